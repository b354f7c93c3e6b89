"""Hardware: the GPU catalog (datasheet peaks) and latency profiles (calibrated, transferred or datasheet)."""

from dsocr_trace.hardware.profile import (
    SCHEMA,
    Curve,
    KindCurves,
    Profile,
    default_profile,
    load_profile,
    packaged_profile,
    transfer_profile,
)
from dsocr_trace.hardware.spec import DeviceSpec, catalog, load_device, load_device_file

__all__ = [
    "SCHEMA",
    "Curve",
    "DeviceSpec",
    "KindCurves",
    "Profile",
    "catalog",
    "default_profile",
    "load_device",
    "load_device_file",
    "load_profile",
    "packaged_profile",
    "transfer_profile",
]
