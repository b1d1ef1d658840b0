"""The Bedrock adapter's wire protocol: SigV4 against AWS's published test vectors (and the fake
upstream verifying signatures as AWS does), the event-stream framing against botocore's /
aws-c-event-stream's published frames. The converters: test_bedrock.py."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import yarl

from bench.fake_bedrock import ApiError, verify_sigv4
from bench.fake_http import Request
from workers.providers.bedrock.adapter import model_path
from workers.providers.bedrock.eventstream import EventStreamDecoder, EventStreamError, Message, encode_message
from workers.providers.bedrock.sigv4 import EMPTY_SHA256, AwsCredentials, authorization, signed_headers, signing_key

pytestmark = pytest.mark.unit

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
EXAMPLE = AwsCredentials("AKIDEXAMPLE", SECRET)
VANILLA_HEADERS = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}

# ---- SigV4 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "method", "path", "query", "signature"),
    [  # AWS's SigV4 test suite (service "service", us-east-1, 2015-08-30T12:36:00Z, no body)
        ("get-vanilla", "GET", "/", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("post-vanilla", "POST", "/", "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        ("get-utf8", "GET", "/\u1234", "", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ],
)
def test_sigv4_matches_the_aws_test_suite(case, method, path, query, signature):
    header = authorization(EXAMPLE, method, path, query, VANILLA_HEADERS, EMPTY_SHA256, "us-east-1", "service")
    assert header == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    ), case


def test_signing_key_matches_the_documented_derivation_example():
    assert signing_key(SECRET, "20120215", "us-east-1", "iam").hex() == (
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    )


def test_signed_headers_sign_the_body_hash_and_the_session_token():
    creds = AwsCredentials("AKIDEXAMPLE", SECRET, "session-token-abc")
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    host = "bedrock-runtime.us-east-1.amazonaws.com"
    headers = signed_headers(creds, "POST", host, "/model/m/converse", b"{}", "us-east-1", "bedrock", now)
    assert headers["x-amz-date"] == "20240501T100000Z"
    assert headers["x-amz-content-sha256"] == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert headers["x-amz-security-token"] == "session-token-abc"
    assert "Credential=AKIDEXAMPLE/20240501/us-east-1/bedrock/aws4_request" in headers["authorization"]
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," in headers["authorization"]
    other = signed_headers(creds, "POST", host, "/model/m/converse", b"{ }", "us-east-1", "bedrock", now)
    assert other["authorization"] != headers["authorization"]  # the body is part of the signature


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "odd model+id@x!",
    ],
)
def test_the_path_signed_is_the_path_the_http_client_sends(model_id):
    """The worker's transport (aiohttp) re-quotes URLs with yarl: the path must come out unchanged,
    else AWS computes its signature over another path."""
    path = model_path(model_id, "converse")
    url = httpx.URL("https://bedrock-runtime.us-east-1.amazonaws.com" + path)
    assert url.raw_path.decode() == path
    assert yarl.URL(str(url)).raw_path == path
    assert path.count("/") == 3  # the id is one segment, an ARN's "/" included


def _signed_request(path: str, body: bytes, secret: str = SECRET, host: str = "127.0.0.1:9", now=None) -> Request:
    creds = AwsCredentials("AKIDEXAMPLE", secret)
    headers = signed_headers(creds, "POST", host, path, body, "us-east-1", "bedrock", now)
    return Request("POST", path, {k.lower(): v for k, v in headers.items()}, body)


def test_the_fake_verifies_signatures_like_aws():
    path = model_path("anthropic.claude-3-haiku-20240307-v1:0", "converse")
    good = _signed_request(path, b'{"messages":[]}')
    verify_sigv4(good, "AKIDEXAMPLE", SECRET, "us-east-1", None)  # accepted
    tampered = [
        (Request("POST", path, good.headers, b'{"messages":[1]}'), "InvalidSignatureException"),
        (Request("POST", path.replace("converse", "invoke"), good.headers, good.body), "InvalidSignatureException"),
        (_signed_request(path, good.body, secret="not-the-secret"), "InvalidSignatureException"),
        (Request("POST", path, {**good.headers, "host": "127.0.0.1:10"}, good.body), "InvalidSignatureException"),
        (
            Request("POST", path, {k: v for k, v in good.headers.items() if k != "authorization"}, good.body),
            "MissingAuthenticationTokenException",
        ),
    ]
    for request, error_type in tampered:
        with pytest.raises(ApiError) as info:
            verify_sigv4(request, "AKIDEXAMPLE", SECRET, "us-east-1", None)
        assert (info.value.status, info.value.error_type) == (403, error_type)
    with pytest.raises(ApiError) as info:
        verify_sigv4(good, "AKIDOTHER", SECRET, "us-east-1", None)
    assert info.value.error_type == "UnrecognizedClientException"
    with pytest.raises(ApiError, match="region"):
        verify_sigv4(good, "AKIDEXAMPLE", SECRET, "eu-west-1", None)
    stale = _signed_request(path, good.body, now=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(ApiError, match="expired"):
        verify_sigv4(stale, "AKIDEXAMPLE", SECRET, "us-east-1", None)


# ---- event stream ---------------------------------------------------------------------------

# Published frames (botocore's and aws-c-event-stream's decoder tests).
EMPTY_FRAME = bytes.fromhex("000000100000000005c248eb7d98c8ff")
STRING_HEADER_FRAME = (
    b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json{'foo':'bar'}\x8d\x9c\x08\xb1"
)
ERROR_FRAME = (
    b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e"
    b"\x0d:message-type\x07\x00\x05error\x0b:error-code\x07\x00\x04code"
    b"\x0e:error-message\x07\x00\x07message\x6b\x6c\xea\x3d"
)
ALL_TYPES_FRAME = (
    b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c"
    b"\x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03"
    b"\x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05"
    b"\x016\x06\x00\x05bytes\x017\x07\x00\x04utf8"
    b"\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef"
    b"\x63\x35\x36\x71"
)


def test_decoder_reads_the_published_frames():
    decoder = EventStreamDecoder()
    assert list(decoder.feed(EMPTY_FRAME)) == [Message({}, b"")]
    assert list(decoder.feed(STRING_HEADER_FRAME)) == [Message({"content-type": "application/json"}, b"{'foo':'bar'}")]
    assert next(decoder.feed(ERROR_FRAME)).headers == {
        ":message-type": "error",
        ":error-code": "code",
        ":error-message": "message",
    }
    assert next(decoder.feed(ALL_TYPES_FRAME)).headers == {
        "0": True,
        "1": False,
        "2": 2,
        "3": 3,
        "4": 4,
        "5": 5,
        "6": b"bytes",
        "7": "utf8",
        "8": 8,
        "9": b"0123456789abcdef",
    }
    assert decoder.pending == 0


def test_encoder_reproduces_published_frames_and_round_trips_byte_by_byte():
    assert encode_message({}, b"") == EMPTY_FRAME
    assert encode_message({"content-type": "application/json"}, b"{'foo':'bar'}") == STRING_HEADER_FRAME
    frames = [
        encode_message(
            {":event-type": "contentBlockDelta", ":message-type": "event", "n": 7, "flag": True, "raw": b"\x00\x01"},
            b'{"delta":{"text":"h\xc3\xa9"}}',
        ),
        encode_message({":event-type": "messageStop"}, b""),
    ]
    decoder = EventStreamDecoder()
    got = [m for byte in b"".join(frames) for m in decoder.feed(bytes([byte]))]
    assert got == [
        Message(
            {":event-type": "contentBlockDelta", ":message-type": "event", "n": 7, "flag": True, "raw": b"\x00\x01"},
            b'{"delta":{"text":"h\xc3\xa9"}}',
        ),
        Message({":event-type": "messageStop"}, b""),
    ]
    partial = EventStreamDecoder()
    assert list(partial.feed(frames[0][:-3])) == [] and partial.pending == len(frames[0]) - 3


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'\x8d\xc3e96", "message CRC"),  # payload damaged
        (STRING_HEADER_FRAME.replace(b"content-type", b"content+type"), "message CRC"),  # header damaged
        (b"\x01" + EMPTY_FRAME[1:], "prelude CRC"),  # length damaged
        (EMPTY_FRAME[:-4] + bytes(4), "message CRC"),
    ],
)
def test_decoder_rejects_crc_mismatches(frame, error):
    with pytest.raises(EventStreamError, match=error):
        list(EventStreamDecoder().feed(frame))


def test_messages_before_a_damaged_one_are_delivered_first():
    good = encode_message({":event-type": "messageStart"}, b"{}")
    bad = encode_message({":event-type": "contentBlockDelta"}, b"{}")
    bad = bad[:-1] + bytes([bad[-1] ^ 0xFF])
    messages = EventStreamDecoder().feed(good + bad + good)
    assert next(messages).headers == {":event-type": "messageStart"}
    with pytest.raises(EventStreamError):
        next(messages)
