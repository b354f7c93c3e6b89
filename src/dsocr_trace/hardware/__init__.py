"""Hardware: the GPU catalog (datasheet peaks) and calibration profiles (how close kernels come to them)."""

from dsocr_trace.hardware.profile import (
    SCHEMA,
    Curve,
    GemmEntry,
    KindCurves,
    Profile,
    default_profile,
    load_profile,
    profile_bytes,
    save_profile,
)
from dsocr_trace.hardware.spec import DeviceSpec, catalog, load_device, load_device_file

__all__ = [
    "SCHEMA",
    "Curve",
    "DeviceSpec",
    "GemmEntry",
    "KindCurves",
    "Profile",
    "catalog",
    "default_profile",
    "load_device",
    "load_device_file",
    "load_profile",
    "profile_bytes",
    "save_profile",
]
