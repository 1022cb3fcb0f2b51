"""Aggregate deltas: who counts where, which version wins, and what a re-run changes (nothing)."""


from userpipeline.jobs.stream.deltas import (
    Delta, Profile, Removal, Stored, age_band, dimension_keys, latest_per_user, plan_batch, subtract,
)


def profile(uid: str, ts: int, *, offset: int = 0, partition: int = 0, nat: str | None = "FR", gender: str | None = "female",
            age: int = 30, domain: str | None = "example.com") -> Profile:
    return Profile(uid, gender, nat, age, age, domain, "e", "p", "c", "a", "n", "d", None, ts, partition, offset)


def stored(p: Profile) -> Stored:
    return Stored(p.user_id, p.gender, p.nat, p.age, p.email_domain, p.event_time_ms, p.source_partition, p.source_offset)


def as_dict(deltas: list[Delta]) -> dict[str, tuple[int, int]]:
    return {d.doc_id: (d.count, d.age_sum) for d in deltas}


def test_age_bands_cover_every_age():
    assert [age_band(a) for a in (0, 17, 18, 24, 25, 34, 35, 44, 45, 54, 55, 64, 65, 120)] == [
        "0-17", "0-17", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44", "45-54", "45-54", "55-64", "55-64", "65+", "65+"]


def test_missing_or_odd_values_count_as_unknown():
    keys = dict(dimension_keys(profile("u", 1, nat=None, gender="other", domain=None)))
    assert keys == {"total": "all", "nationality": "unknown", "gender": "unknown", "ageBand": "25-34", "emailDomain": "unknown"}


def test_latest_record_per_user_wins_and_first_offset_breaks_ties():
    a1, a2, a3 = profile("a", 100, offset=1), profile("a", 200, offset=2), profile("a", 200, offset=3)
    b1 = profile("b", 50, offset=4)
    latest = {p.user_id: p for p in latest_per_user([a3, b1, a1, a2])}
    assert latest["a"] is a2 and latest["b"] is b1


def test_new_users_are_added_everywhere():
    plan = plan_batch([profile("a", 1, age=30), profile("b", 1, nat="DE", age=40)], {})
    assert as_dict(plan.deltas) == {
        "total:all": (2, 70), "nationality:FR": (1, 30), "nationality:DE": (1, 40), "gender:female": (2, 70),
        "ageBand:25-34": (1, 30), "ageBand:35-44": (1, 40), "emailDomain:example.com": (2, 70)}
    assert len(plan.writes) == 2


def test_a_resent_user_moves_between_groups():
    old = profile("a", 1, nat="FR", gender="female", age=30, domain="a.com")
    new = profile("a", 2, nat="DE", gender="male", age=45, domain="b.com")
    plan = plan_batch([new], {"a": stored(old)})
    assert as_dict(plan.deltas) == {
        "total:all": (0, 15), "nationality:FR": (-1, -30), "nationality:DE": (1, 45), "gender:female": (-1, -30),
        "gender:male": (1, 45), "ageBand:25-34": (-1, -30), "ageBand:45-54": (1, 45), "emailDomain:a.com": (-1, -30),
        "emailDomain:b.com": (1, 45)}
    assert plan.writes == [new]


def test_an_unchanged_resend_writes_but_adds_nothing():
    old, new = profile("a", 1), profile("a", 2, offset=9)
    plan = plan_batch([new], {"a": stored(old)})
    assert plan.deltas == [] and plan.writes == [new]


def test_an_older_or_tied_record_changes_nothing():
    current = profile("a", 10, offset=5, nat="DE")
    for late in (profile("a", 9, offset=7, nat="FR"), profile("a", 10, offset=8, nat="FR")):
        plan = plan_batch([late], {"a": stored(current)})
        assert plan.deltas == [] and plan.writes == []


def test_rerun_of_a_written_batch_rewrites_the_same_rows_without_deltas():
    p = profile("a", 10, offset=5)
    plan = plan_batch([p], {"a": stored(p)})
    assert plan.deltas == [] and plan.writes == [p]


def test_subtracting_a_refused_users_contribution_leaves_the_others_exactly():
    moved, refused = profile("a", 2, nat="DE"), profile("b", 2, nat="FR", age=40)
    before = {"a": stored(profile("a", 1, nat="FR"))}
    whole = plan_batch([moved, refused], before)
    without = subtract(whole.deltas, plan_batch([refused], before).deltas)
    assert without == plan_batch([moved], before).deltas
    assert as_dict(without) == {"nationality:DE": (1, 30), "nationality:FR": (-1, -30)}
    assert subtract(whole.deltas, whole.deltas) == []


def test_a_newer_minor_or_rejected_version_removes_the_stored_one():
    old = profile("a", 10, offset=1, nat="DE", age=40)
    plan = plan_batch([], {"a": stored(old)}, [Removal("a", 20, 0, 2)])
    assert plan.deletes == [stored(old)] and plan.writes == []
    assert as_dict(plan.deltas) == {"total:all": (-1, -40), "nationality:DE": (-1, -40), "gender:female": (-1, -40),
                                    "ageBand:35-44": (-1, -40), "emailDomain:example.com": (-1, -40)}
    # An older (or tied) invalid version changes nothing; the newest of a batch wins, valid or not.
    for late in (Removal("a", 9, 0, 3), Removal("a", 10, 0, 4)):
        assert plan_batch([], {"a": stored(old)}, [late]) == plan_batch([], {"a": stored(old)})
    newer = profile("a", 30, offset=5, nat="FR", age=40)
    assert plan_batch([newer], {"a": stored(old)}, [Removal("a", 20, 0, 2)]).writes == [newer]
    last = plan_batch([newer], {"a": stored(old)}, [Removal("a", 31, 0, 6)])
    assert last.writes == [] and last.deletes == [stored(old)]
    tied = plan_batch([newer], {"a": stored(old)}, [Removal("a", 30, 0, 1)])  # same millisecond, earlier offset
    assert tied.writes == [newer] and tied.deletes == []
    # A removal of a user nobody stored: nothing to do.
    assert plan_batch([], {}, [Removal("b", 5, 0, 7)]).deltas == []


def test_a_record_past_the_retention_is_not_stored_and_removes_an_older_version():
    old, late = profile("a", 10, offset=1, age=40), profile("a", 20, offset=2, age=41)
    plan = plan_batch([late], {"a": stored(old)}, expired_before_ms=20)
    assert plan.writes == [] and plan.deletes == [stored(old)] and plan.expired == 1
    assert as_dict(plan.deltas)["total:all"] == (-1, -40)
    fresh = plan_batch([profile("b", 21)], {}, expired_before_ms=20)
    assert fresh.expired == 0 and len(fresh.writes) == 1 and as_dict(fresh.deltas)["total:all"] == (1, 30)
