"""Drive the VPC simulator with Alibaba's OFFICIAL Python SDKs and check what they make of it.

    python tests/sdk/drive_simulator.py --endpoint 127.0.0.1:PORT --sdk v3|v2|legacy

Modes (versions pinned in tests/sdk/requirements.txt):
  v3      alibabacloud_vpc20160428.Client and alibabacloud_sts20150401.Client, default config:
          ACS3-HMAC-SHA256 (V3) signature.
  v2      the same clients with Config(signature_algorithm='v2'): RPC signature v1 (HMAC-SHA1).
  legacy  aliyunsdkcore AcsClient + aliyunsdkvpc request classes, and a CommonRequest for STS
          GetCallerIdentity: RPC signature v1 (HMAC-SHA1).

The lifecycle of one /28 (allocate with a ClientToken, Allocating -> Allocated, an idempotent repeat,
the other account's client neither seeing nor releasing it, 16 members, release with a ClientToken,
Releasing -> gone), then the authentication errors (tampered secret, unknown AccessKeyId), a PrePaid
segment (seeded through the admin API) whose release is refused, and STS GetCallerIdentity for both
accounts' keys and for temporary credentials from AssumeRoleWithOIDC (obtained with the STS SDK in
every mode). One JSON line per check on stdout; exit status 1 if any check failed, 2 on a usage or
setup error.
"""

import argparse
import base64
import ipaddress
import json
import sys
import time
import traceback
import urllib.request
import uuid

DEFAULT_ACCESS_KEY_ID = "LTAI5tSimulatorDefaultKey"
DEFAULT_ACCESS_KEY_SECRET = "SimulatorDefaultSecretNotForProduction"
DEFAULT_ACCOUNT = "1234567890123456"
# The simulator's second account and its documented key (src/simulator/mod.rs).
OTHER_ACCESS_KEY_ID = "LTAI5tSimulatorOtherKey"
OTHER_ACCESS_KEY_SECRET = "SimulatorOtherSecretNotForProduction"
OTHER_ACCOUNT = "6543210987654321"
# The simulator's default RRSA setup (src/simulator/sts.rs).
ROLE_ARN = f"acs:ram::{DEFAULT_ACCOUNT}:role/eipsegment-operator"
OIDC_PROVIDER_ARN = f"acs:ram::{DEFAULT_ACCOUNT}:oidc-provider/ack-rrsa-simulator"
OIDC_ISSUER = "https://oidc-ack.cn-hangzhou.aliyuncs.com/simulator"


class SdkError(Exception):
    """An error answer as the SDK surfaced it: its code, HTTP status and message."""

    def __init__(self, code, status, message, sdk_exception):
        super().__init__(f"{code} (HTTP {status}): {message}")
        self.code = code
        self.status = status
        self.message = message
        self.sdk_exception = sdk_exception


class CheckFailed(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# SDK adapters: one small interface, implemented with each official SDK.
# Every method returns plain Python values taken from the SDK's own response models.
# ---------------------------------------------------------------------------------------------


class TeaVpc:
    """alibabacloud_vpc20160428 (Darabonba / tea-openapi) in V3 or v2 signature mode."""

    def __init__(self, endpoint, region, access_key_id, access_key_secret, signature_algorithm=None):
        from alibabacloud_tea_openapi.models import Config
        from alibabacloud_vpc20160428.client import Client
        from alibabacloud_vpc20160428 import models

        config = Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=endpoint,
            protocol="http",
            region_id=region,
            read_timeout=10000,
            connect_timeout=5000,
        )
        if signature_algorithm is not None:
            config.signature_algorithm = signature_algorithm
        self.client = Client(config)
        self.models = models
        self.region = region

    def _call(self, fn, request):
        from Tea.exceptions import TeaException

        try:
            return fn(request).body
        except TeaException as e:
            status = getattr(e, "status_code", None) or getattr(e, "statusCode", None)
            if status is None and isinstance(getattr(e, "data", None), dict):
                status = e.data.get("statusCode")
            raise SdkError(e.code, status, e.message, e) from None

    def allocate(self, mask, token):
        body = self._call(
            self.client.allocate_eip_segment_address,
            self.models.AllocateEipSegmentAddressRequest(region_id=self.region, eip_mask=str(mask), client_token=token),
        )
        return body.eip_segment_instance_id

    def describe(self, segment_id):
        body = self._call(
            self.client.describe_eip_segment,
            self.models.DescribeEipSegmentRequest(region_id=self.region, segment_instance_id=segment_id or None),
        )
        items = body.eip_segments.eip_segment if body.eip_segments and body.eip_segments.eip_segment else []
        return [
            {"InstanceId": s.instance_id, "Status": s.status, "Segment": s.segment, "IpCount": s.ip_count}
            for s in items
        ]

    def members(self, segment_id):
        body = self._call(
            self.client.describe_eip_addresses,
            self.models.DescribeEipAddressesRequest(region_id=self.region, segment_instance_id=segment_id, page_size=100),
        )
        items = body.eip_addresses.eip_address if body.eip_addresses and body.eip_addresses.eip_address else []
        return body.total_count, [
            {"AllocationId": a.allocation_id, "IpAddress": a.ip_address, "Status": a.status,
             "SegmentInstanceId": a.segment_instance_id}
            for a in items
        ]

    def release(self, segment_id, token):
        body = self._call(
            self.client.release_eip_segment_address,
            self.models.ReleaseEipSegmentAddressRequest(region_id=self.region, segment_instance_id=segment_id, client_token=token),
        )
        return body.request_id


class LegacyVpc:
    """aliyunsdkcore.client.AcsClient with the aliyunsdkvpc request classes (RPC signature v1)."""

    def __init__(self, endpoint, region, access_key_id, access_key_secret):
        from aliyunsdkcore.client import AcsClient

        # auto_retry off: a retry would hide what the simulator answered the first time.
        self.client = AcsClient(access_key_id, access_key_secret, region, auto_retry=False, timeout=10, connect_timeout=5)
        self.endpoint = endpoint
        self.region = region
        # Imported up front, so no import delay falls between an allocate and the next describe.
        from aliyunsdkvpc.request.v20160428 import (AllocateEipSegmentAddressRequest, DescribeEipAddressesRequest,
                                                    DescribeEipSegmentRequest, ReleaseEipSegmentAddressRequest)
        self.requests = argparse.Namespace(
            AllocateEipSegmentAddressRequest=AllocateEipSegmentAddressRequest.AllocateEipSegmentAddressRequest,
            DescribeEipSegmentRequest=DescribeEipSegmentRequest.DescribeEipSegmentRequest,
            DescribeEipAddressesRequest=DescribeEipAddressesRequest.DescribeEipAddressesRequest,
            ReleaseEipSegmentAddressRequest=ReleaseEipSegmentAddressRequest.ReleaseEipSegmentAddressRequest,
        )

    def _call(self, request):
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        request.set_endpoint(self.endpoint)
        request.set_protocol_type("http")
        request.set_accept_format("json")
        try:
            return json.loads(self.client.do_action_with_exception(request))
        except ServerException as e:
            raise SdkError(e.get_error_code(), e.get_http_status(), e.get_error_msg(), e) from None

    def allocate(self, mask, token):
        r = self.requests.AllocateEipSegmentAddressRequest()
        r.set_EipMask(str(mask))
        r.set_ClientToken(token)
        return self._call(r)["EipSegmentInstanceId"]

    def describe(self, segment_id):
        r = self.requests.DescribeEipSegmentRequest()
        if segment_id:
            r.set_SegmentInstanceId(segment_id)
        body = self._call(r)
        items = (body.get("EipSegments") or {}).get("EipSegment") or []
        return [{k: s.get(k) for k in ("InstanceId", "Status", "Segment", "IpCount")} for s in items]

    def members(self, segment_id):
        r = self.requests.DescribeEipAddressesRequest()
        r.set_SegmentInstanceId(segment_id)
        r.set_PageSize(100)
        body = self._call(r)
        items = (body.get("EipAddresses") or {}).get("EipAddress") or []
        return body.get("TotalCount"), [
            {k: a.get(k) for k in ("AllocationId", "IpAddress", "Status", "SegmentInstanceId")} for a in items
        ]

    def release(self, segment_id, token):
        r = self.requests.ReleaseEipSegmentAddressRequest()
        r.set_SegmentInstanceId(segment_id)
        r.set_ClientToken(token)
        return self._call(r).get("RequestId")


def identity_fields(body):
    """GetCallerIdentity's fields, from the STS SDK's response model or the legacy JSON."""
    names = {"AccountId": "account_id", "Arn": "arn", "IdentityType": "identity_type",
             "PrincipalId": "principal_id", "UserId": "user_id", "RoleId": "role_id", "RequestId": "request_id"}
    if isinstance(body, dict):
        return {k: body.get(k) for k in names}
    return {k: getattr(body, attr) for k, attr in names.items()}


class TeaSts:
    """alibabacloud_sts20150401 (Darabonba / tea-openapi) in V3 or v2 signature mode."""

    def __init__(self, endpoint, access_key_id=None, access_key_secret=None, security_token=None,
                 signature_algorithm=None):
        from alibabacloud_tea_openapi.models import Config
        from alibabacloud_sts20150401.client import Client
        from alibabacloud_sts20150401 import models

        config = Config(access_key_id=access_key_id, access_key_secret=access_key_secret,
                        security_token=security_token, endpoint=endpoint, protocol="http",
                        read_timeout=10000, connect_timeout=5000)
        if signature_algorithm is not None:
            config.signature_algorithm = signature_algorithm
        self.client = Client(config)
        self.models = models

    def _call(self, fn, *args):
        from Tea.exceptions import TeaException

        try:
            return fn(*args).body
        except TeaException as e:
            status = getattr(e, "status_code", None) or getattr(e, "statusCode", None)
            if status is None and isinstance(getattr(e, "data", None), dict):
                status = e.data.get("statusCode")
            raise SdkError(e.code, status, e.message, e) from None

    def caller_identity(self):
        return identity_fields(self._call(self.client.get_caller_identity))

    def assume_role_with_oidc(self, oidc_token, session):
        request = self.models.AssumeRoleWithOIDCRequest(role_arn=ROLE_ARN, oidcprovider_arn=OIDC_PROVIDER_ARN,
                                                        oidctoken=oidc_token, role_session_name=session)
        body = self._call(self.client.assume_role_with_oidc, request)
        c = body.credentials
        return {"AccessKeyId": c.access_key_id, "AccessKeySecret": c.access_key_secret,
                "SecurityToken": c.security_token, "Arn": body.assumed_role_user.arn,
                "AssumedRoleId": body.assumed_role_user.assumed_role_id}


class LegacySts:
    """aliyunsdkcore AcsClient with a CommonRequest for STS (RPC signature v1)."""

    def __init__(self, endpoint, access_key_id, access_key_secret, security_token=None):
        from aliyunsdkcore.client import AcsClient
        from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential

        if security_token:
            credential = StsTokenCredential(access_key_id, access_key_secret, security_token)
        else:
            credential = AccessKeyCredential(access_key_id, access_key_secret)
        self.client = AcsClient(region_id="cn-hangzhou", credential=credential, auto_retry=False, timeout=10,
                                connect_timeout=5)
        self.endpoint = endpoint

    def caller_identity(self):
        from aliyunsdkcore.acs_exception.exceptions import ServerException
        from aliyunsdkcore.request import CommonRequest

        r = CommonRequest(domain=self.endpoint, version="2015-04-01", action_name="GetCallerIdentity")
        r.set_protocol_type("http")
        r.set_method("POST")
        r.set_accept_format("json")
        try:
            return identity_fields(json.loads(self.client.do_action_with_exception(r)))
        except ServerException as e:
            raise SdkError(e.get_error_code(), e.get_http_status(), e.get_error_msg(), e) from None


def make_sts(sdk, endpoint, access_key_id, access_key_secret, security_token=None):
    if sdk == "v3":
        return TeaSts(endpoint, access_key_id, access_key_secret, security_token)
    if sdk == "v2":
        return TeaSts(endpoint, access_key_id, access_key_secret, security_token, signature_algorithm="v2")
    if sdk == "legacy":
        return LegacySts(endpoint, access_key_id, access_key_secret, security_token)
    raise ValueError(sdk)


def oidc_token():
    """A JWT with the claims the simulator's default OIDC provider accepts (it checks no signature)."""
    def b64(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": OIDC_ISSUER, "aud": ["sts.aliyuncs.com"], "sub": "system:serviceaccount:ops:drive-simulator",
              "iat": now, "exp": now + 3600}
    return f"{b64({'alg': 'RS256', 'kid': 'drive'})}.{b64(claims)}.c2lnbmF0dXJl"


def make_client(sdk, endpoint, region, access_key_id, access_key_secret):
    if sdk == "v3":
        return TeaVpc(endpoint, region, access_key_id, access_key_secret)
    if sdk == "v2":
        return TeaVpc(endpoint, region, access_key_id, access_key_secret, signature_algorithm="v2")
    if sdk == "legacy":
        return LegacyVpc(endpoint, region, access_key_id, access_key_secret)
    raise ValueError(sdk)


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


class Run:
    def __init__(self, sdk):
        self.sdk = sdk
        self.failures = 0

    def emit(self, check, ok, **detail):
        line = {"sdk": self.sdk, "check": check, "ok": ok}
        line.update(detail)
        print(json.dumps(line, sort_keys=False, default=str), flush=True)
        if not ok:
            self.failures += 1

    def check(self, name, fn):
        """Runs fn(); its return value (a dict) is the detail. CheckFailed/SdkError/others fail it."""
        try:
            detail = fn() or {}
            self.emit(name, True, **detail)
            return True
        except CheckFailed as e:
            self.emit(name, False, error=str(e))
        except SdkError as e:
            self.emit(name, False, error=f"unexpected SDK error {e}", code=e.code, status=e.status)
        except Exception as e:  # noqa: BLE001 - every failure must become a reported check
            self.emit(name, False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=6))
        return False


def require(cond, message):
    if not cond:
        raise CheckFailed(message)


def poll(describe, want, timeout, interval=0.1):
    """Calls describe() until want(result) is true; CheckFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        result = describe()
        if not seen or seen[-1] != result:
            seen.append(result)
        if want(result):
            return result, seen
        if time.monotonic() >= deadline:
            raise CheckFailed(f"not reached within {timeout}s; answers seen: {seen[-5:]}")
        time.sleep(interval)


def expect_error(fn, codes):
    try:
        result = fn()
    except SdkError as e:
        require(e.code in codes, f"expected error code in {codes}, got {e.code} (HTTP {e.status}): {e.message}")
        return {"code": e.code, "status": e.status}
    raise CheckFailed(f"expected error {codes}, but the call succeeded: {result!r}")


def admin(base, method, path, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/__admin/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True, help="host:port of the simulator (plain http)")
    p.add_argument("--sdk", required=True, choices=["v3", "v2", "legacy"])
    p.add_argument("--region", default="cn-hangzhou")
    p.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    p.add_argument("--access-key-secret", default=DEFAULT_ACCESS_KEY_SECRET)
    p.add_argument("--timeout", type=float, default=30.0, help="bound of each poll, seconds")
    args = p.parse_args()

    endpoint = args.endpoint
    for prefix in ("http://", "https://"):
        if endpoint.startswith(prefix):
            endpoint = endpoint[len(prefix):]
    endpoint = endpoint.rstrip("/")
    admin_base = f"http://{endpoint}"

    run = Run(args.sdk)
    try:
        vpc = make_client(args.sdk, endpoint, args.region, args.access_key_id, args.access_key_secret)
    except Exception as e:  # noqa: BLE001
        run.emit("client", False, error=f"cannot build the {args.sdk} SDK client: {type(e).__name__}: {e}")
        return 2

    state = {}
    token = f"drive-{args.sdk}-{uuid.uuid4().hex[:16]}"

    def allocate():
        sid = vpc.allocate(28, token)
        require(isinstance(sid, str) and sid.startswith("eipsg-"), f"EipSegmentInstanceId {sid!r} is not an eipsg- ID")
        state["id"] = sid
        return {"segment": sid, "clientToken": token}

    def describe_allocating():
        items = vpc.describe(state["id"])
        require(len(items) == 1, f"DescribeEipSegment by ID returned {len(items)} segments: {items}")
        s = items[0]
        require(s["InstanceId"] == state["id"], f"wrong segment returned: {s}")
        require(s["Status"] == "Allocating",
                f"status {s['Status']!r} right after allocate, want Allocating (simulator --allocate-seconds too short?)")
        return {"status": s["Status"]}

    def allocated():
        (items, seen) = poll(lambda: vpc.describe(state["id"]),
                             lambda it: len(it) == 1 and it[0]["Status"] == "Allocated", args.timeout)
        s = items[0]
        statuses = [i[0]["Status"] if i else None for i in seen]
        require(isinstance(s["Segment"], str) and s["Segment"].endswith("/28"), f"Segment {s['Segment']!r} is not a /28 CIDR")
        require(str(s["IpCount"]) == "16", f"IpCount {s['IpCount']!r}, want 16")
        state["cidr"] = s["Segment"]
        return {"statuses": statuses, "segment": s["Segment"], "ipCount": s["IpCount"]}

    def idempotent_repeat():
        again = vpc.allocate(28, token)
        require(again == state["id"], f"repeat with ClientToken {token} returned {again}, first call {state['id']}")
        return {"segment": again}

    other = make_client(args.sdk, endpoint, args.region, OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET)

    def other_account_is_isolated():
        by_id = other.describe(state["id"])
        require(by_id == [], f"the other account's DescribeEipSegment by ID returned {by_id}")
        page = other.describe(None)
        require(all(s["InstanceId"] != state["id"] for s in page), f"the other account's page lists it: {page}")
        detail = expect_error(lambda: other.release(state["id"], f"other-{token}"), {"Forbidden"})
        require(detail["status"] == 400, f"Forbidden with HTTP {detail['status']}, want 400")
        mine = vpc.describe(state["id"])
        require(len(mine) == 1 and mine[0]["Status"] == "Allocated", f"after the refused release: {mine}")
        return {"otherPage": len(page), **detail}

    def members():
        total, items = vpc.members(state["id"])
        require(len(items) == 16, f"{len(items)} member EIPs listed, want 16")
        require(str(total) == "16", f"TotalCount {total!r}, want 16")
        require(all(a["SegmentInstanceId"] == state["id"] for a in items), "a member names another segment")
        ips = sorted((a["IpAddress"] for a in items), key=ipaddress.ip_address)
        require(len(set(ips)) == 16, "member IP addresses are not distinct")
        net = ipaddress.ip_network(state["cidr"])
        require(all(ipaddress.ip_address(ip) in net for ip in ips), f"a member lies outside {net}: {ips}")
        return {"count": len(items), "first": ips[0], "last": ips[-1]}

    def release():
        rid = vpc.release(state["id"], f"release-{token}")
        require(rid, "ReleaseEipSegmentAddress returned no RequestId")
        return {"requestId": rid}

    def releasing():
        items = vpc.describe(state["id"])
        require(len(items) <= 1, f"DescribeEipSegment by ID returned {len(items)} segments")
        status = items[0]["Status"] if items else None
        require(status == "Releasing",
                f"status {status!r} right after release, want Releasing (None: already gone; simulator --release-seconds too short?)")
        return {"status": status}

    def gone():
        _, seen = poll(lambda: vpc.describe(state["id"]), lambda it: len(it) == 0, args.timeout)
        return {"statuses": [i[0]["Status"] if i else "gone" for i in seen]}

    lifecycle = [
        ("allocate", allocate),
        ("describe-allocating", describe_allocating),
        ("poll-allocated", allocated),
        ("allocate-idempotent-repeat", idempotent_repeat),
        ("other-account-isolated", other_account_is_isolated),
        ("describe-members", members),
        ("release", release),
        ("describe-releasing", releasing),
        ("poll-gone", gone),
    ]
    for name, fn in lifecycle:
        if not run.check(name, fn):
            run.emit("lifecycle", False, error=f"lifecycle stopped at {name}")
            break

    # --- authentication errors ---
    # The legacy SDK (aliyunsdkcore client.py) rewrites a SignatureDoesNotMatch whose "server string
    # to sign is:..." equals its own string to sign into InvalidAccessKeySecret: the wire code is
    # SignatureDoesNotMatch (the Rust test checks the simulator's counters for it).
    tampered_codes = {"SignatureDoesNotMatch"} | ({"InvalidAccessKeySecret"} if args.sdk == "legacy" else set())

    def tampered_secret():
        bad = make_client(args.sdk, endpoint, args.region, args.access_key_id, args.access_key_secret + "x")
        return expect_error(lambda: bad.describe(None), tampered_codes)

    def unknown_key():
        bad = make_client(args.sdk, endpoint, args.region, "LTAI5tNoSuchKeyAnywhere", args.access_key_secret)
        return expect_error(lambda: bad.describe(None), {"InvalidAccessKeyId.NotFound"})

    run.check("tampered-secret", tampered_secret)
    run.check("unknown-access-key", unknown_key)

    # --- a PrePaid segment, seeded out of band, cannot be released ---
    def prepaid():
        seeded = admin(admin_base, "POST", "segments", {"chargeType": "PrePaid", "regionId": args.region})
        sid = seeded.get("instanceId")
        require(sid, f"admin seed returned no instanceId: {seeded}")
        try:
            detail = expect_error(lambda: vpc.release(sid, f"prepaid-{token}"), {"Forbidden.ChargeTypeIsPrepaid"})
        finally:
            try:
                admin(admin_base, "DELETE", f"segments/{sid}")
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        detail["segment"] = sid
        return detail

    run.check("release-prepaid", prepaid)

    # --- STS GetCallerIdentity: who each key acts for ---
    def identity_of(access_key_id, access_key_secret, account):
        def check():
            who = make_sts(args.sdk, endpoint, access_key_id, access_key_secret).caller_identity()
            want = {"AccountId": account, "Arn": f"acs:ram::{account}:root", "IdentityType": "Account",
                    "PrincipalId": account, "UserId": account}
            got = {k: who[k] for k in want}
            require(got == want, f"GetCallerIdentity answered {who}, want {want}")
            require(who["RequestId"], f"no RequestId in {who}")
            return got
        return check

    def identity_of_unknown_key():
        sts = make_sts(args.sdk, endpoint, "LTAI5tNoSuchKeyAnywhere", args.access_key_secret)
        return expect_error(sts.caller_identity, {"InvalidAccessKeyId.NotFound"})

    def identity_of_assumed_role():
        session = f"drive-{args.sdk}"
        algorithm = "v2" if args.sdk == "v2" else None
        grant = TeaSts(endpoint, signature_algorithm=algorithm).assume_role_with_oidc(oidc_token(), session)
        who = make_sts(args.sdk, endpoint, grant["AccessKeyId"], grant["AccessKeySecret"],
                       grant["SecurityToken"]).caller_identity()
        want_arn = f"acs:ram::{DEFAULT_ACCOUNT}:assumed-role/eipsegment-operator/{session}"
        require(who["IdentityType"] == "AssumedRoleUser", f"IdentityType in {who}")
        require(who["AccountId"] == DEFAULT_ACCOUNT, f"AccountId in {who}")
        require(who["Arn"] == want_arn == grant["Arn"], f"Arn in {who}, want {want_arn} (grant {grant['Arn']})")
        require(who["PrincipalId"] == grant["AssumedRoleId"], f"PrincipalId in {who}, grant {grant['AssumedRoleId']}")
        return {"arn": who["Arn"], "principalId": who["PrincipalId"], "roleId": who["RoleId"]}

    run.check("caller-identity-default", identity_of(args.access_key_id, args.access_key_secret, DEFAULT_ACCOUNT))
    run.check("caller-identity-other", identity_of(OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET, OTHER_ACCOUNT))
    run.check("caller-identity-unknown-key", identity_of_unknown_key)
    run.check("caller-identity-assumed-role", identity_of_assumed_role)

    if run.failures:
        print(f"drive_simulator: {run.failures} check(s) FAILED with the {args.sdk} SDK", file=sys.stderr)
        return 1
    run.emit("all", True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
