"""Media pre-flight against a loopback server that serves each good and bad case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from mmsjson import MMS, Image, MediaError, MMSClient, Pdf, Slide, check_media
from mmsjson.testing import FakeMMSServer

JPEG = b"\xff\xd8" + b"0" * 100


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(JPEG)
    await response.write_eof()
    return response


def serve(body: bytes, content_type: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        response = web.Response(body=body)
        if content_type is None:
            response.headers.popall("Content-Type", None)
        else:
            response.content_type = content_type
        return response

    return handler


def redirect(to: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(to)

    return handler


@pytest.fixture
async def media_host() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/good.jpg", serve(JPEG, "image/jpeg"))
    app.router.add_get("/doc.pdf", serve(b"%PDF-1.4", "application/pdf"))
    app.router.add_get("/chunked.jpg", chunked)
    app.router.add_get("/page.jpg", serve(b"<html></html>", "text/html"))
    app.router.add_get("/octet.jpg", serve(JPEG, "application/octet-stream"))
    app.router.add_get("/big.jpg", serve(b"0" * 1_200_000, "image/jpeg"))
    app.router.add_get("/once.jpg", redirect("/good.jpg"))
    app.router.add_get("/twice.jpg", redirect("/once.jpg"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_a_good_image_passes(media_host: str) -> None:
    check = await check_media(f"{media_host}/good.jpg", "image")
    assert (check.ok, check.status, check.content_length, check.warnings) == (True, 200, len(JPEG), ())


async def test_one_redirect_is_followed(media_host: str) -> None:
    check = await check_media(f"{media_host}/once.jpg", "image")
    assert check.ok and check.redirected_to == f"{media_host}/good.jpg"


async def test_two_redirects_are_refused(media_host: str) -> None:
    check = await check_media(f"{media_host}/twice.jpg", "image")
    assert not check.ok and "only one redirect" in check.problems[0]


async def test_chunked_without_a_length_is_refused(media_host: str) -> None:
    check = await check_media(f"{media_host}/chunked.jpg", "image")
    assert not check.ok and "no Content-Length (chunked" in check.problems[0]


async def test_a_404_is_refused(media_host: str) -> None:
    check = await check_media(f"{media_host}/missing.jpg", "image")
    assert not check.ok and "HTTP 404" in check.problems[0]


async def test_a_type_that_does_not_fit_the_slide_kind_is_refused(media_host: str) -> None:
    check = await check_media(f"{media_host}/page.jpg", "image")
    assert not check.ok and "text/html, which is not a image type" in check.problems[0]


async def test_octet_stream_is_flagged(media_host: str) -> None:
    check = await check_media(f"{media_host}/octet.jpg", "image")
    assert check.ok and "octet-stream" in check.warnings[0]


async def test_over_a_megabyte_is_a_warning(media_host: str) -> None:
    check = await check_media(f"{media_host}/big.jpg", "image")
    assert check.ok and "1 MB" in check.warnings[0]


async def test_an_unreachable_host_is_refused() -> None:
    async with FakeMMSServer() as server:
        gone = server.base_url
    check = await check_media(gone + "a.jpg", "image")
    assert not check.ok and "could not be fetched" in check.problems[0]


async def test_the_client_refuses_to_send_when_media_would_fail_and_sends_nothing(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], media_host: str
) -> None:
    mms = MMS(slides=[Slide(text="a", image=Image(f"{media_host}/good.jpg")),
                      Slide(pdf=Pdf(f"{media_host}/chunked.jpg"))], fallback_sms_text="x")
    async with make_client(preflight_media=True) as client:
        with pytest.raises(MediaError, match=r"slides\[1\]\.pdf\.url .*no Content-Length"):
            await client.send(mms, "17745559144")
    assert not fake.arrivals


async def test_the_client_sends_when_media_passes_and_caches_the_check(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], media_host: str
) -> None:
    mms = MMS(slides=[Slide(pdf=Pdf(f"{media_host}/doc.pdf"))], fallback_sms_text="x")
    async with make_client(preflight_media=True) as client:
        await client.send_group(mms, ["17745550001", "17745550002"])
        await client.send(mms, "17745550003")
        assert len(client._media_checks) == 1
    assert len(fake.deliveries()) == 3
