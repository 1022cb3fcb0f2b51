"""FerretDB: a pymongo round trip and an aggregation with the accumulators the pipeline relies on."""

import uuid


def group_sum(coll, accumulator):
    rows = coll.aggregate([{"$group": {"_id": "$nat", "v": {"$sum": accumulator}}}, {"$sort": {"_id": 1}}])
    return [(r["_id"], r["v"]) for r in rows]


def test_pymongo_round_trip_and_group_sum(mongo):
    with mongo.client() as client:
        coll = client["smoke"][f"c{uuid.uuid4().hex[:8]}"]
        coll.insert_many([{"nat": nat, "age": age} for nat, age in [("FR", 30), ("FR", 40), ("DE", 25)]])
        assert coll.find_one({"nat": "DE"})["age"] == 25
        # FerretDB 1.24 computes only the FIRST accumulator of a $group stage (the others come back 0),
        # so the project uses one accumulator per $group (see docs/data-contract.md).
        assert group_sum(coll, 1) == [("DE", 1), ("FR", 2)]
        assert group_sum(coll, "$age") == [("DE", 25), ("FR", 70)]


def test_upsert_with_inc_is_supported(mongo):
    with mongo.client() as client:
        coll = client["smoke"]["counters"]
        for _ in range(3):
            coll.update_one({"_id": "x"}, {"$inc": {"n": 2}, "$set": {"tag": "t"}}, upsert=True)
        assert coll.find_one({"_id": "x"})["n"] == 6
