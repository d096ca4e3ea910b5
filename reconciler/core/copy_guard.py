"""When a copy of data must be masked, whatever a flag or a configuration file asks (pure).

Two kinds of targets never receive unmasked data: any environment that is not production when the
copy comes from production (people other than production's users read it), and any environment of a
tier that runs untrusted code (a pull request's addons run there and can read every row). The plan
enforces this on `.odooops.yaml` (a tier default is turned into masking, an explicit `mask: false`
blocks the environment); the data path (`odooops db clone`, restores into another environment)
enforces it again, because those take their flags from a person, not from Git.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.model import Tier
from reconciler.errors import OdooOpsError

# The EnvSpec setting (present and true only) that marks an environment running untrusted code.
UNTRUSTED_SETTING = "runs_untrusted_code"
FORCED_ORIGIN = "policy: copies of production outside production, and untrusted tiers, are always masked"


def masking_reason(*, from_production: bool, target_tier: str | None, target_untrusted: bool) -> str | None:
    """Why a copy into this target must be masked, or None when masking is the user's choice."""
    if target_untrusted:
        return f"the target runs untrusted code (tier {target_tier or '?'}: pull-request addons read every row)"
    if from_production and target_tier != str(Tier.PRODUCTION):
        return "the copy comes from production and the target is not production"
    return None


def check_copy_masking(source: str, target: str, *, from_production: bool, target_tier: str | None,
                       target_untrusted: bool, mask: bool) -> None:
    """Raise CLONE_MASKING_REQUIRED when `mask` is off for a copy that must be masked."""
    reason = masking_reason(from_production=from_production, target_tier=target_tier,
                            target_untrusted=target_untrusted)
    if mask or reason is None:
        return
    raise OdooOpsError(
        "CLONE_MASKING_REQUIRED", f"a copy of {source} into {target} must be masked: {reason}",
        f"odooops db clone {source} {target}  # without --no-mask (the copy's personal data gets fake values)",
        {"source": source, "target": target, "target_tier": target_tier})


def target_untrusted(settings: Mapping[str, Any] | None) -> bool:
    """Whether a deployed environment's recorded settings mark it as running untrusted code."""
    return bool((settings or {}).get(UNTRUSTED_SETTING))


def spec_masking(values: dict[str, Any], origins: dict[str, str], tier: Tier,
                 untrusted: bool) -> tuple[str, str] | None:
    """Make a resolved environment's `mask` what the rule above requires, in place.

    A value that came from the policy is turned on (with FORCED_ORIGIN); a `mask: false` written in
    `.odooops.yaml` is refused: returns (reason, remediation) for a blocked action instead."""
    if values.get("data_source") != "production" or values.get("mask"):
        return None
    reason = masking_reason(from_production=True, target_tier=str(tier), target_untrusted=untrusted)
    if reason is None:
        return None
    origin = origins.get("mask", "default")
    if origin.startswith(".odooops.yaml"):
        where = origin.removeprefix(".odooops.yaml").strip()
        return (f"CLONE_MASKING_REQUIRED: data.mask is false at {origin}, but {reason}",
                f"remove `mask: false` (or set it to true) at {where} in .odooops.yaml; "
                "the copy of production is then masked")
    values["mask"] = True
    origins["mask"] = FORCED_ORIGIN
    return None


__all__ = ["FORCED_ORIGIN", "UNTRUSTED_SETTING", "check_copy_masking", "masking_reason", "spec_masking",
           "target_untrusted"]
