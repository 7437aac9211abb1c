"""boto3 against Lambent: versions, qualifiers, aliases with weighted routing, and published
versions that keep their warm sandboxes when $LATEST is redeployed."""

import collections
import json

from lambent_boto3 import arn, app, client, create, invoke

lam = client()

v1 = create(lam, "canary", app("one"), Publish=True)
assert v1["Version"] == "1" and v1["FunctionArn"] == arn("canary", "1"), v1
lam.update_function_code(FunctionName="canary", ZipFile=app("two"))
v2 = lam.publish_version(FunctionName="canary", Description="second")
assert v2["Version"] == "2" and v2["Description"] == "second", v2
again = lam.publish_version(FunctionName="canary")
assert again["Version"] == "2", "an unchanged $LATEST publishes no new version"
versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="canary")["Versions"]]
assert versions == ["$LATEST", "1", "2"], versions

for qualifier, expected in [("1", "one"), ("2", "two"), ("$LATEST", "two")]:
    r, out = invoke(lam, "canary", {}, Qualifier=qualifier)
    assert out["version"] == expected and r["ExecutedVersion"] == qualifier, (qualifier, r, out)
r, out = invoke(lam, "canary:1", {})
assert out["version"] == "one" and r["ExecutedVersion"] == "1", out
assert out["arn"] == arn("canary", "1"), out
assert lam.get_function(FunctionName="canary", Qualifier="1")["Configuration"]["Version"] == "1"
for bad in ["9", "nope"]:
    try:
        invoke(lam, "canary", {}, Qualifier=bad)
        raise AssertionError(f"qualifier {bad} was accepted")
    except lam.exceptions.ResourceNotFoundException:
        pass

# A 90/10 canary.
alias = lam.create_alias(FunctionName="canary", Name="live", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
assert alias["AliasArn"] == arn("canary", "live"), alias
assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}, alias
split = collections.Counter()
for _ in range(200):
    r, out = invoke(lam, "canary", {}, Qualifier="live")
    assert {"1": "one", "2": "two"}[r["ExecutedVersion"]] == out["version"], (r, out)
    split[r["ExecutedVersion"]] += 1
print("split over 200 invokes:", json.dumps(split))
# Binomial(200, 0.1): mean 20, standard deviation 4.2; 5..40 is beyond 3.5 deviations.
assert 5 <= split["2"] <= 40 and split["1"] + split["2"] == 200, split

got = lam.get_alias(FunctionName="canary", Name="live")
assert got["FunctionVersion"] == "1", got
try:
    lam.update_alias(FunctionName="canary", Name="live", RevisionId="stale")
    raise AssertionError("a stale alias RevisionId was accepted")
except lam.exceptions.PreconditionFailedException:
    pass
updated = lam.update_alias(FunctionName="canary", Name="live", FunctionVersion="2",
                           RoutingConfig={"AdditionalVersionWeights": {}})
assert updated["FunctionVersion"] == "2" and "RoutingConfig" not in updated, updated
for _ in range(10):
    r, out = invoke(lam, "canary", {}, Qualifier="live")
    assert r["ExecutedVersion"] == "2" and out["version"] == "two", (r, out)
try:
    lam.create_alias(FunctionName="canary", Name="live", FunctionVersion="1")
    raise AssertionError("a duplicate alias was created")
except lam.exceptions.ResourceConflictException:
    pass
assert [a["Name"] for a in lam.list_aliases(FunctionName="canary")["Aliases"]] == ["live"]
for bad_alias, bad_weights in [("7", {}), ("has:colon", {}), ("w", {"2": 1.5}), ("w", {"$LATEST": 0.1})]:
    try:
        lam.create_alias(FunctionName="canary", Name=bad_alias, FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": bad_weights})
        raise AssertionError(f"alias {bad_alias} {bad_weights} was accepted")
    except lam.exceptions.InvalidParameterValueException:
        pass

# Published versions keep their warm sandboxes when $LATEST is redeployed.
_, before = invoke(lam, "canary", {}, Qualifier="1")
lam.update_function_configuration(FunctionName="canary", Description="redeployed")
lam.update_function_code(FunctionName="canary", ZipFile=app("three"))
_, after = invoke(lam, "canary", {}, Qualifier="1")
assert after["version"] == "one" and after["calls"] == before["calls"] + 1, (before, after)
_, latest = invoke(lam, "canary", {})
assert latest["version"] == "three" and latest["calls"] == 1, latest

# Provisioned concurrency for a published version (never $LATEST).
config = lam.put_provisioned_concurrency_config(
    FunctionName="canary", Qualifier="1", ProvisionedConcurrentExecutions=2)
assert config["RequestedProvisionedConcurrentExecutions"] == 2, config
assert config["AllocatedProvisionedConcurrentExecutions"] == 2 and config["Status"] == "READY", config
got = lam.get_provisioned_concurrency_config(FunctionName="canary", Qualifier="1")
assert got["AvailableProvisionedConcurrentExecutions"] == 2, got
via_alias = lam.put_provisioned_concurrency_config(
    FunctionName="canary", Qualifier="live", ProvisionedConcurrentExecutions=1)
assert via_alias["Status"] == "READY", via_alias
assert lam.get_provisioned_concurrency_config(FunctionName="canary", Qualifier="2")[
    "RequestedProvisionedConcurrentExecutions"] == 1
try:
    lam.put_provisioned_concurrency_config(
        FunctionName="canary", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    raise AssertionError("provisioned concurrency for $LATEST was accepted")
except lam.exceptions.InvalidParameterValueException:
    pass
for version in ["1", "2"]:
    lam.delete_provisioned_concurrency_config(FunctionName="canary", Qualifier=version)
    try:
        lam.get_provisioned_concurrency_config(FunctionName="canary", Qualifier=version)
        raise AssertionError("a deleted provisioned concurrency config is still there")
    except lam.exceptions.ProvisionedConcurrencyConfigNotFoundException:
        pass

lam.delete_alias(FunctionName="canary", Name="live")
try:
    lam.get_alias(FunctionName="canary", Name="live")
    raise AssertionError("a deleted alias is still there")
except lam.exceptions.ResourceNotFoundException:
    pass
# Deleting one version: not while an alias routes to it; its number is never reused.
lam.create_alias(FunctionName="canary", Name="pinned", FunctionVersion="2")
try:
    lam.delete_function(FunctionName="canary", Qualifier="2")
    raise AssertionError("a version an alias routes to was deleted")
except lam.exceptions.ResourceConflictException:
    pass
lam.delete_function(FunctionName="canary", Qualifier="1")
try:
    invoke(lam, "canary", {}, Qualifier="1")
    raise AssertionError("a deleted version still runs")
except lam.exceptions.ResourceNotFoundException:
    pass
v3 = lam.publish_version(FunctionName="canary")
assert v3["Version"] == "3", v3
versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="canary")["Versions"]]
assert versions == ["$LATEST", "2", "3"], versions
_, out = invoke(lam, "canary", {}, Qualifier="pinned")
assert out["version"] == "two", out
print("versions: ok")
