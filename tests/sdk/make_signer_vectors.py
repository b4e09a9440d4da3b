"""Regenerate: python3.11 -m venv V && V/bin/pip install -r tests/sdk/requirements.txt && V/bin/python tests/sdk/make_signer_vectors.py  (rewrites tests/fixtures/signer_vectors.json; must be byte-identical)."""

# Every expected value below comes out of Alibaba's official Python SDK code, never out of a
# re-implementation in this file:
#
#   RPC v1 (HMAC-SHA1)
#     * aliyunsdkcore.auth.composer.rpc_signature_composer  (legacy SDK, aliyun-python-sdk-core):
#       the module-private __compose_string_to_sign / __get_signature that get_signed_url() calls,
#       and get_signed_url() itself (with its clock and nonce pinned) for the "legacy request" case;
#       aliyunsdkcore.auth.algorithm.sha_hmac1.get_sign_string for the HMAC.
#     * alibabacloud_openapi_util.client.Client.get_rpcsignature  (Tea SDK, alibabacloud-openapi-util)
#     * alibabacloud_tea_openapi.utils.Utils.get_rpcsignature     (Darabonba SDK, the one
#       alibabacloud-vpc20160428 actually runs through)
#     All three must agree on string-to-sign and signature, or this script fails.
#
#   V3 (ACS3-HMAC-SHA256)
#     * alibabacloud_openapi_util.client.Client.get_authorization
#     * alibabacloud_tea_openapi.utils.Utils.get_authorization
#     Both must agree. get_authorization() does not return its intermediate strings, so we wrap the
#     module's own `hash` / `signature_method` to record the canonical request and the string to
#     sign it passes through (the SDK code still computes them).
#
# Behaviour learned from that SDK source (Python 3.11, versions in requirements.txt):
#   * v1, empty values: BOTH SDKs sign an empty value as "Key=" (aliyunsdkcore urlencodes every
#     dict entry; openapi-util/tea-openapi drop only None). The legacy SDK always sends and signs
#     SignatureType="" (rpc_signature_composer.__refresh_sign_parameters). The SDKs differ only on
#     None: openapi-util drops it, aliyunsdkcore would sign the text "None". None is not
#     representable in our (key, value) string pairs, so no vector covers it.
#   * V3 canonical query (get_canonical_query_string): keys are NOT percent-encoded (only values,
#     quote(v, safe='~')), keys are sorted raw, None values dropped, empty values kept as "Key=".
#     V3 vectors therefore only use keys made of unreserved characters (as every real API
#     parameter is), where encoding the key or not gives the same bytes.
#   * V3 signed headers (get_canonicalized_headers): EVERY request header with a non-None value is
#     signed (host, user-agent, accept, content-type, x-acs-*), names lower-cased, values stripped,
#     repeated names joined with ",". The live client adds Authorization only after signing.

import contextlib
import json
import os
import random
import sys

import aliyunsdkcore.auth.composer.rpc_signature_composer as rpc_composer
import aliyunsdkcore.utils.parameter_helper as parameter_helper
from aliyunsdkcore.auth.algorithm import sha_hmac1

import alibabacloud_openapi_util.client as openapi_util_module
from alibabacloud_openapi_util.client import Client as OpenApiUtil

import alibabacloud_tea_openapi.utils as tea_openapi_utils_module
from alibabacloud_tea_openapi.utils import Utils as TeaOpenApiUtils

from Tea.request import TeaRequest
from darabonba.request import DaraRequest

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "signer_vectors.json"))

# Module-private helpers of the legacy composer (module-level double underscore: no name mangling).
_compose_string_to_sign = getattr(rpc_composer, "__compose_string_to_sign")
_get_signature = getattr(rpc_composer, "__get_signature")

# Fixed, obviously fake credentials.
AK = "LTAI5tTESTACCESSKEYID00"
SECRET = "testSecretKEY0123456789abcdefXYZ"
STS_TOKEN = (
    "CAIS+AF1q6Ft5B2yfSjIr5bSEsn+3+Zx0/K/YmDIkDNkQ+ZbqfDDlzz2IHlIeHBqAO8fs/k3lW5Z7vwflrN+QJVdHlDDa5E2"
    "GsupGoqn3XUxvv9K3Tby/J8aV3MHlGKZ//Yqg7+rQc2Ow+a6q8Mra2fU9PzMq8AH4EFDexWlYUq3HZuWCHXA=="
)
SPECIAL_VALUE = "a b*c~d+e/f=g&h%i é 中文 !#$'()*,;:@[]?\"<>\\^`{|} 100%2F"


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class _HmacShim:
    """Stands in for the `hmac` module inside an SDK module to record what it is asked to sign."""

    def __init__(self, real):
        self.real = real
        self.calls = []

    def new(self, key, msg=None, digestmod=None):
        self.calls.append((key, msg))
        return self.real.new(key, msg, digestmod)


def legacy_v1(method, params, secret):
    """aliyunsdkcore: the exact helpers get_signed_url() uses."""
    sts = _compose_string_to_sign(method, dict(params))
    sig = _get_signature(sts, secret, sha_hmac1)
    # get_signed_url's __get_signature is signer.get_sign_string(sts, secret + '&'); check directly too.
    assert sig == sha_hmac1.get_sign_string(sts, secret + "&")
    return sts, sig


def util_v1(module, util_cls, method, params, secret):
    """openapi-util / tea-openapi get_rpcsignature; the string to sign is captured from its hmac call."""
    import hmac as real_hmac

    shim = _HmacShim(real_hmac)
    with patched(module, "hmac", shim):
        sig = util_cls.get_rpcsignature(dict(params), method, secret)
    assert len(shim.calls) == 1, shim.calls
    key, msg = shim.calls[0]
    assert key == (secret + "&").encode("utf-8")
    return msg.decode("utf-8"), sig


def rpc_case(name, description, method, params, secret=SECRET):
    sts_a, sig_a = legacy_v1(method, params, secret)
    sts_b, sig_b = util_v1(openapi_util_module, OpenApiUtil, method, params, secret)
    sts_c, sig_c = util_v1(tea_openapi_utils_module, TeaOpenApiUtils, method, params, secret)
    if not (sts_a == sts_b == sts_c and sig_a == sig_b == sig_c):
        sys.exit(
            f"SDKs disagree on {name}:\n aliyunsdkcore {sts_a!r} {sig_a}\n openapi-util  {sts_b!r} {sig_b}\n"
            f" tea-openapi   {sts_c!r} {sig_c}"
        )
    return {
        "name": name,
        "kind": "rpc_v1",
        "description": description,
        "method": method,
        "params": [[k, v] for k, v in params],
        "secret": secret,
        "expected_string_to_sign": sts_a,
        "expected_signature": sig_a,
        "sources": [
            "aliyunsdkcore.auth.composer.rpc_signature_composer.__compose_string_to_sign/__get_signature",
            "alibabacloud_openapi_util.client.Client.get_rpcsignature",
            "alibabacloud_tea_openapi.utils.Utils.get_rpcsignature",
        ],
    }


def legacy_request_case():
    """The legacy SDK's full get_signed_url() path, clock and nonce pinned: shows what it really signs
    (including the empty SignatureType it always adds)."""
    query = {"Action": "AllocateEipSegmentAddress", "Version": "2016-04-28", "RegionId": "cn-hangzhou",
             "EipMask": "28", "Netmode": "public"}
    body = {"ClientToken": "0c593ea1-3bea-11e9-b96b-88e9fe637760"}
    with patched(parameter_helper, "get_iso_8061_date", lambda: "2024-05-01T12:00:00Z"), \
            patched(parameter_helper, "get_uuid", lambda: "6a1f0d2e-1b7e-4c1a-9a57-3e5f0c1b2a33"):
        url_params = dict(query)
        # get_signed_url adds the common parameters to url_params in place, signs them merged with the
        # body params, then adds Signature to url_params.
        _url, sts = rpc_composer.get_signed_url(url_params, AK, SECRET, "JSON", "POST", body, sha_hmac1)
    signed = {k: v for k, v in url_params.items() if k != "Signature"}
    signed.update(body)
    params = sorted(signed.items())
    case = rpc_case("v1_legacy_get_signed_url_with_empty_SignatureType",
                    "aliyunsdkcore get_signed_url() as the legacy client calls it: it adds SignatureType='' "
                    "and signs it as 'SignatureType='", "POST", params)
    assert case["expected_string_to_sign"] == sts, (case["expected_string_to_sign"], sts)
    assert "SignatureType%3D%26" in sts
    case["sources"].append("aliyunsdkcore.auth.composer.rpc_signature_composer.get_signed_url")
    return case


def v3_case(name, description, query, headers, payload_sha256, ak=AK, secret=SECRET, method="POST", path="/"):
    results = []
    for module, util_cls, req_cls in (
        (openapi_util_module, OpenApiUtil, TeaRequest),
        (tea_openapi_utils_module, TeaOpenApiUtils, DaraRequest),
    ):
        req = req_cls()
        req.method = method
        req.pathname = path
        req.query = dict(query)
        req.headers = dict(headers)
        seen = {}
        real_hash, real_sign = util_cls.hash, module.signature_method

        def hash_spy(raw, sign_type, real_hash=real_hash, seen=seen):
            seen["canonical_request"] = raw.decode("utf-8")
            return real_hash(raw, sign_type)

        def sign_spy(secret_, source, sign_type, real_sign=real_sign, seen=seen):
            seen["string_to_sign"] = source
            out = real_sign(secret_, source, sign_type)
            seen["signature"] = out.hex()
            return out

        with patched(util_cls, "hash", staticmethod(hash_spy)), patched(module, "signature_method", sign_spy):
            auth = util_cls.get_authorization(req, "ACS3-HMAC-SHA256", payload_sha256, ak, secret)
        assert auth.endswith("Signature=" + seen["signature"]), (auth, seen)
        results.append((seen["canonical_request"], seen["string_to_sign"], seen["signature"], auth))
    if results[0] != results[1]:
        sys.exit(f"SDKs disagree on {name}:\n openapi-util {results[0]!r}\n tea-openapi  {results[1]!r}")
    canonical_request, sts, sig, auth = results[0]
    return {
        "name": name,
        "kind": "v3",
        "description": description,
        "method": method,
        "path": path,
        "query": [[k, v] for k, v in query],
        "headers": [[k, v] for k, v in headers],
        "payload_sha256": payload_sha256,
        "ak": ak,
        "secret": secret,
        "expected_canonical_request": canonical_request,
        "expected_string_to_sign": sts,
        "expected_signature": sig,
        "expected_authorization": auth,
        "sources": [
            "alibabacloud_openapi_util.client.Client.get_authorization",
            "alibabacloud_tea_openapi.utils.Utils.get_authorization",
        ],
    }


def form_sha256(body):
    """x-acs-content-sha256 of a form body, as tea-openapi computes it (Utils.to_form + Utils.hash)."""
    return TeaOpenApiUtils.hash(TeaOpenApiUtils.to_form(body).encode("utf-8"), "ACS3-HMAC-SHA256").hex()


def shuffled(pairs, seed):
    pairs = list(pairs)
    random.Random(seed).shuffle(pairs)
    return pairs


def common_v1(action, extra=()):
    return [
        ("Action", action), ("Version", "2016-04-28"), ("Format", "JSON"), ("AccessKeyId", AK),
        ("SignatureMethod", "HMAC-SHA1"), ("SignatureVersion", "1.0"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"), ("Timestamp", "2024-05-01T12:00:00Z"),
        *extra,
    ]


def v3_headers(action, payload_sha256, extra=(), content_type="application/x-www-form-urlencoded"):
    hs = [
        ("host", "vpc.aliyuncs.com"),
        ("x-acs-version", "2016-04-28"),
        ("x-acs-action", action),
        ("user-agent", "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.6 TeaDSL/2"),
        ("x-acs-date", "2024-05-01T12:00:00Z"),
        ("x-acs-signature-nonce", "9b2f6a0e4c8d4e1f8a7b6c5d4e3f2a1b"),
        ("accept", "application/json"),
    ]
    if content_type is not None:
        hs.append(("content-type", content_type))
    hs.append(("x-acs-content-sha256", payload_sha256))
    hs.extend(extra)
    return hs


def build():
    cases = []

    # ---------------- RPC v1 ----------------
    cases.append(rpc_case(
        "v1_allocate_basic", "AllocateEipSegmentAddress with the common parameters, ASCII only", "POST",
        common_v1("AllocateEipSegmentAddress", [
            ("RegionId", "cn-hangzhou"), ("EipMask", "28"), ("Bandwidth", "5"), ("Netmode", "public"),
            ("InternetChargeType", "PayByTraffic"), ("ClientToken", "eipseg-default-web-7f3c")])))
    cases.append(rpc_case(
        "v1_describe_get", "GET method: only the method prefix differs", "GET",
        common_v1("DescribeEipSegment", [("RegionId", "cn-hangzhou"), ("SegmentInstanceId", "eipsg-2zett8ba055tbsxme****"),
                                          ("PageNumber", "1"), ("PageSize", "50")])))
    cases.append(rpc_case(
        "v1_special_characters_in_values",
        "values with space, * ~ + / = & %, reserved and unsafe ASCII, é and 中文", "POST",
        common_v1("AllocateEipSegmentAddress", [
            ("RegionId", "cn-hangzhou"), ("Description", SPECIAL_VALUE), ("Name", "é"), ("ResourceGroupId", "中文"),
            ("Tag.1.Key", "env name"), ("Tag.1.Value", "a*b~c"), ("Tag.2.Key", "x+y/z"), ("Tag.2.Value", "k=v&k2=v2"),
            ("Tag.3.Key", "%20 literal"), ("Tag.3.Value", "  leading and trailing  "),
            ("Emoji", "\U0001F600"), ("Tab", "a\tb\nc")])))
    cases.append(rpc_case(
        "v1_special_characters_in_keys",
        "keys that need encoding, and keys differing only in case (byte order: upper before lower)", "POST",
        [("a", "lower"), ("B", "upper"), ("A", "upper-a"), ("b", "lower-b"), ("key with space", "1"), ("clé", "2"),
         ("键", "3"), ("k*~", "4"), ("k+/=&", "5"), ("Z", "6"), ("_u", "7"), ("-h", "8"), (".d", "9"), ("~t", "10"),
         ("0n", "11")]))
    cases.append(rpc_case(
        "v1_security_token",
        "STS credentials: SecurityToken (base64-ish, with + / =) is a signed parameter", "POST",
        common_v1("ReleaseEipSegmentAddress", [("RegionId", "cn-shanghai"), ("SegmentInstanceId", "eipsg-t4nhtekcf3bbm****"),
                                               ("ClientToken", "c0ffee00-1111-2222-3333-444455556666"),
                                               ("SecurityToken", STS_TOKEN)])))
    many = common_v1("DescribeEipSegment", [("RegionId", "ap-southeast-1")]) + [
        (f"Tag.{i}.Key", f"key-{i} é") for i in range(1, 21)] + [(f"Tag.{i}.Value", f"v{i}*~/") for i in range(1, 21)]
    cases.append(rpc_case(
        "v1_many_params_random_order",
        "50 parameters inserted in a seeded random order (sorting: Tag.10 before Tag.2)", "POST", shuffled(many, 20240501)))
    cases.append(rpc_case(
        "v1_secret_with_special_characters", "the secret is used verbatim (+ '&') as the HMAC key", "POST",
        common_v1("DescribeEipSegment", [("RegionId", "cn-beijing")]), secret="s3cr&t+/=é 中"))
    cases.append(rpc_case(
        "v1_empty_value_description",
        "an empty value is signed as 'Description=' by aliyunsdkcore, openapi-util and tea-openapi alike "
        "(only None is dropped, by the latter two)", "POST",
        common_v1("AllocateEipSegmentAddress", [("RegionId", "cn-hangzhou"), ("EipMask", "28"), ("Description", "")])))
    cases.append(rpc_case(
        "v1_empty_values_several",
        "several empty values, including the legacy SDK's SignatureType=''", "POST",
        common_v1("DescribeEipSegment", [("RegionId", "cn-hangzhou"), ("SignatureType", ""), ("Description", ""),
                                          ("ResourceGroupId", ""), ("PageSize", "10")])))
    cases.append(legacy_request_case())

    # ---------------- V3 ----------------
    body = {"EipMask": "28", "Netmode": "public", "ClientToken": "eipseg-default-web-7f3c"}
    payload = form_sha256(body)
    cases.append(v3_case(
        "v3_basic_all_headers_signed",
        "every request header (host, user-agent, accept, content-type, x-acs-*) is signed",
        [("RegionId", "cn-hangzhou")], v3_headers("AllocateEipSegmentAddress", payload), payload))
    empty_payload = TeaOpenApiUtils.hash(b"", "ACS3-HMAC-SHA256").hex()
    cases.append(v3_case(
        "v3_empty_query_empty_body", "no query at all, payload hash of the empty body, no content-type",
        [], v3_headers("DescribeEipSegment", empty_payload, content_type=None), empty_payload))
    cases.append(v3_case(
        "v3_special_values_and_empty_value",
        "values with space * ~ + / = & %, é, 中文, reserved ASCII; an empty value stays as 'Key='",
        [("RegionId", "cn-hangzhou"), ("Description", SPECIAL_VALUE), ("Name", "é"), ("ResourceGroupId", "中文"),
         ("Tag.1.Key", "env name"), ("Tag.1.Value", "a*b~c+d/e=f&g"), ("Empty", ""), ("Tag.2.Key", "")],
        v3_headers("AllocateEipSegmentAddress", empty_payload, content_type=None), empty_payload))
    sts_headers = [("x-acs-accesskey-id", AK), ("x-acs-security-token", STS_TOKEN)]
    cases.append(v3_case(
        "v3_security_token", "STS: x-acs-security-token and x-acs-accesskey-id are signed headers",
        [("RegionId", "cn-shanghai"), ("SegmentInstanceId", "eipsg-t4nhtekcf3bbm****")],
        v3_headers("ReleaseEipSegmentAddress", payload, sts_headers), payload))
    many_q = [("RegionId", "ap-southeast-1")] + [(f"Tag.{i}.Key", f"key-{i} é") for i in range(1, 16)] + [
        (f"Tag.{i}.Value", f"v{i}*~/&=") for i in range(1, 16)] + [("a", "lower"), ("B", "upper"), ("Z", "")]
    cases.append(v3_case(
        "v3_many_query_params_random_order", "31+ query params in seeded random order; headers shuffled too",
        shuffled(many_q, 424242), shuffled(v3_headers("DescribeEipSegment", empty_payload), 7), empty_payload))
    cases.append(v3_case(
        "v3_header_values_trimmed", "header values are stripped of surrounding whitespace before signing",
        [("RegionId", "cn-hangzhou")],
        [(k, f"  {v} ") if k in ("user-agent", "x-acs-action") else (k, v)
         for k, v in v3_headers("DescribeEipSegment", empty_payload)], empty_payload))
    cases.append(v3_case(
        "v3_secret_with_special_characters", "the V3 HMAC key is the secret itself (no '&')",
        [("RegionId", "cn-beijing")], v3_headers("DescribeEipSegment", empty_payload), empty_payload,
        ak="LTAI5tOTHERKEY", secret="s3cr&t+/=é 中"))

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), names
    return cases


def main():
    cases = build()
    text = json.dumps(cases, ensure_ascii=False, indent=2) + "\n"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {len(cases)} cases to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
