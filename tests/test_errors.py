import pytest

from mmsjson import (
    AccountError,
    ApiError,
    AuthError,
    BadRequestError,
    ContentError,
    RecipientError,
    SenderError,
    ServerError,
    TemplateError,
    TemplateNotFound,
    ThroughputExceeded,
)
from mmsjson.errors import ERROR_CODES, api_error_from_code, api_error_from_http


@pytest.mark.parametrize(
    ("code", "family"),
    [
        ("E100", BadRequestError), ("E107", BadRequestError), ("E108", BadRequestError),
        ("E104", AuthError), ("E105", AuthError), ("E112", AuthError),
        ("E103", AccountError), ("E713", AccountError),
        ("E113", ThroughputExceeded), ("E106", ThroughputExceeded),
        ("E110", RecipientError), ("E114", RecipientError), ("E111", SenderError),
        ("E223", ContentError), ("E227", ContentError), ("E313", ContentError), ("E335", ContentError),
        ("E341", ContentError), ("E241", TemplateNotFound), ("E311", TemplateError), ("E503", ServerError),
    ],
)
def test_each_documented_code_maps_to_its_family(code: str, family: type[ApiError]) -> None:
    assert type(api_error_from_code(code, None)) is family


def test_every_code_in_the_table_has_a_family_more_precise_than_api_error() -> None:
    assert all(type(api_error_from_code(code, None)) is not ApiError for code in ERROR_CODES)


def test_an_unknown_code_is_an_api_error_with_the_code_kept() -> None:
    error = api_error_from_code("E999", "something new")
    assert (type(error), error.code, str(error)) == (ApiError, "E999", "E999: something new")


def test_the_message_falls_back_to_the_tables_meaning() -> None:
    assert str(api_error_from_code("E241", None)) == "E241: this mms-id does not exist"


def test_only_throughput_errors_are_retryable_among_codes() -> None:
    retryable = {code for code in ERROR_CODES if api_error_from_code(code, None).retryable}
    assert retryable == {"E106", "E113"}


@pytest.mark.parametrize(
    ("status", "family", "retryable"),
    [(429, ThroughputExceeded, True), (503, ServerError, True), (401, AuthError, False),
     (403, AuthError, False), (400, BadRequestError, False), (404, BadRequestError, False)],
)
def test_http_errors_map_by_status(status: int, family: type[ApiError], retryable: bool) -> None:
    error = api_error_from_http(status, "<html>nope</html>")
    assert (type(error), error.retryable, error.http_status) == (family, retryable, status)


def test_a_non_json_body_is_quoted_with_the_status() -> None:
    assert str(api_error_from_http(400, "<h1>Bad</h1>")) == "HTTP 400: HTTP 400 with a non-JSON body: '<h1>Bad</h1>'"
