"""The message helpers: the same texts as core's (hand-checked examples)."""

from __future__ import annotations

import pytest

import otpengine


def test_sms_text_default_with_the_app_hash_and_the_origin_bound_last_line() -> None:
    assert otpengine.sms_text("123456", brand="Acme", ttl=300) == (
        "Acme: your code is 123456. It expires in 5 minutes. Do not share it."
    )
    text = otpengine.sms_text(
        "A7K9Q", brand="Bank", ttl=119.5, webotp_domain="bank.example.com", android_app_hash="V0wMPhmEo8U"
    )
    assert text == (
        "Bank: your code is A7K9Q. It expires in 1 minute. Do not share it.\nV0wMPhmEo8U\n@bank.example.com #A7K9Q"
    )
    assert otpengine.sms_text("8812", brand="Shop", ttl=45, template="{code}: {brand}, {minutes}") == (
        "8812: Shop, 45 seconds"
    )


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"code": "", "brand": "Acme", "ttl": 60}, "code"),
        ({"code": "1234", "brand": "", "ttl": 60}, "brand"),
        ({"code": "1234", "brand": "Acme", "ttl": 0}, "ttl"),
        ({"code": "1234", "brand": "Acme", "ttl": 60, "template": "{code} {amount}"}, "template"),
        ({"code": "1234", "brand": "Acme", "ttl": 60, "webotp_domain": "https://a.com"}, "webotp_domain"),
        ({"code": "1234", "brand": "Acme", "ttl": 60, "android_app_hash": "short"}, "android_app_hash"),
        ({"code": "1234", "brand": "Acme", "ttl": 60, "template": "{code}" + "x" * 200}, "text"),
    ],
)
def test_bad_message_inputs_name_the_argument(kwargs: dict[str, object], named: str) -> None:
    code = kwargs.pop("code")
    with pytest.raises(ValueError, match=f"^{named} must"):
        otpengine.sms_text(code, **kwargs)  # type: ignore[arg-type]


def test_multipart_is_allowed_when_asked() -> None:
    text = otpengine.sms_text("1234", brand="Acme", ttl=60, template="{code}" + "x" * 200, allow_multipart=True)
    assert otpengine.sms_segments(text) == ("GSM-7", 2)


def test_segments_and_voice_and_app_hash() -> None:
    assert otpengine.sms_segments("a" * 160) == ("GSM-7", 1)
    assert otpengine.sms_segments("€" * 81) == ("GSM-7", 2)
    assert otpengine.sms_segments("ж" * 71) == ("UCS-2", 2)
    assert otpengine.voice_text("123456", brand="Acme") == (
        "Your Acme code is 1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6."
    )
    cert = bytes.fromhex("3082010a0282010100c0ffee")
    assert otpengine.android_app_hash("com.example.myapp", cert) == "V0wMPhmEo8U"
    with pytest.raises(ValueError, match="^package_name must"):
        otpengine.android_app_hash("app", cert)
