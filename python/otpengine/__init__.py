"""otpengine: one-time passwords that work once, in time, with limits, never stored in plaintext.

>>> import otpengine
>>> engine = otpengine.Engine(manual_clock=True)
>>> code = engine.issue("alice")
>>> bool(engine.verify("alice", code))
True
"""

from otpengine._types import BackendUnavailable, CapacityExceeded, KeyLocked, OtpError, RateLimited, Stats, Status
from otpengine._native import (
    Engine,
    Verdict,
    __version__,
    android_app_hash,
    hotp,
    ip_scope,
    new_totp_secret,
    qr_svg,
    sms_segments,
    sms_text,
    totp,
    totp_uri,
    voice_text,
)
from otpengine import aio

__all__ = [
    "BackendUnavailable",
    "CapacityExceeded",
    "Engine",
    "KeyLocked",
    "OtpError",
    "RateLimited",
    "Stats",
    "Status",
    "Verdict",
    "__version__",
    "aio",
    "android_app_hash",
    "hotp",
    "ip_scope",
    "new_totp_secret",
    "qr_svg",
    "sms_segments",
    "sms_text",
    "totp",
    "totp_uri",
    "voice_text",
]
