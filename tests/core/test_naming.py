"""Environment names: DNS-safe, bounded, stable, collision-free (property tests)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.naming import env_name_for_branch, env_name_for_change_request, is_valid_env_name

branch_names = st.text(min_size=1, max_size=300).filter(lambda s: s.strip() != "")


@given(branch_names)
@settings(max_examples=500)
def test_every_branch_gets_a_valid_dns_label(branch: str) -> None:
    name = env_name_for_branch(branch)
    assert is_valid_env_name(name), name
    assert len(name) <= 63


@given(branch_names)
def test_names_are_stable(branch: str) -> None:
    assert env_name_for_branch(branch) == env_name_for_branch(branch)


@given(branch_names, branch_names)
@settings(max_examples=500)
def test_distinct_branches_get_distinct_names(a: str, b: str) -> None:
    if a != b:
        assert env_name_for_branch(a) != env_name_for_branch(b)


def test_known_collision_pairs_stay_apart() -> None:
    pairs = [("a/b", "a-b"), ("A-b", "a-b"), ("a_b", "a-b"), ("feature/Ü", "feature/U"),
             ("x" * 300, "x" * 301), ("release/1.0", "release/1-0"), ("pr-7", "pr/7")]
    for a, b in pairs:
        assert env_name_for_branch(a) != env_name_for_branch(b), (a, b)


def test_plain_names_are_kept_and_reserved_names_are_not() -> None:
    assert env_name_for_branch("develop") == "develop"
    assert env_name_for_branch("staging-2") == "staging-2"
    assert env_name_for_branch("production") != "production"
    assert env_name_for_branch("pr-7") != "pr-7"
    assert env_name_for_change_request("pull_request", 7) == "pr-7"
    assert env_name_for_change_request("merge_request", 7) == "mr-7"


def test_hashed_names_are_readable() -> None:
    name = env_name_for_branch("feature/Über-Rechnung")
    assert name.startswith("feature-uber-rechnung--")
    long = env_name_for_branch("feature/" + "very-long-" * 30)
    assert len(long) == 63 and long.startswith("feature-very-long-")
    assert is_valid_env_name(env_name_for_branch("ab/"))  # no "--" at positions 3-4 (IDNA)
    assert is_valid_env_name(env_name_for_branch("☃"))
