#!/usr/bin/env python3
"""Runs Argo CD custom health checks under a real Lua 5.1, case by case from their health_test.yaml.

It works the way Argo CD's own resource_customizations tests do. For each case it loads the
inputPath YAML, gives it to the script as the global table `obj`, runs health.lua, and compares the
returned table's status, message and deletionMessage with healthStatus. As in Argo CD, which converts the object from
JSON, YAML nulls become absent fields and timestamps stay strings. The script runs with only the
libraries Argo CD gives a health check installed through argocd-cm (base, table, os.time/os.date),
which is stricter than Argo CD's own tests, which open all libraries.

    tests/argocd/run_health_tests.py [--lua lua5.1] [--coverage] [ROOT_OR_CHECK_DIR ...]

With no directory it checks deploy/argocd/resource_customizations. --coverage also fails when a line
of a health.lua never ran in any case (line events from debug.sethook, matched against the lines
`luac5.1 -l` lists for the chunk). Needs PyYAML and lua5.1, plus luac5.1 for --coverage (Debian's
lua5.1 package ships both).
"""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    sys.exit("run_health_tests.py needs PyYAML (pip install pyyaml)")

HERE = os.path.dirname(os.path.abspath(__file__))
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


class Loader(yaml.SafeLoader):
    """YAML as Argo CD sees it after sigs.k8s.io/yaml: timestamps stay strings."""


Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def lua_string(s):
    out = ['"']
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\%03d" % b)
    out.append('"')
    return "".join(out)


def lua_value(v):
    """A YAML value as a Lua 5.1 table constructor. Nulls are left out, as Argo CD leaves them."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("NaN and infinities have no JSON form")
        return repr(v)
    if isinstance(v, str):
        return lua_string(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    if isinstance(v, dict):
        fields = []
        for k, x in v.items():
            if x is None:
                continue
            fields.append("[%s] = %s" % (lua_string(str(k)), lua_value(x)))
        return "{" + ", ".join(fields) + "}"
    raise TypeError("no Lua form for %r" % (v,))


# Runs the script with `obj` set, in an environment holding only what Argo CD offers a health check
# from argocd-cm without resource.customizations.useOpenLibs: the base library (less file access),
# table, and os.time/os.date; no string or math library, so strings have no methods either. Prints
# the status, the message and the deletion message, each ended by a NUL, then (for --coverage) the
# lines that ran.
DRIVER = r"""
local source, obj = ...
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  xpcall = xpcall, setmetatable = setmetatable, getmetatable = getmetatable, rawget = rawget,
  rawset = rawset, rawequal = rawequal, print = function() end,
  table = table, os = { time = os.time, date = os.date },
  obj = obj,
}
env._G = env
local chunk, err = loadstring(source, "=health.lua")
if chunk == nil then
  io.stderr:write("does not compile: ", err, "\n")
  os.exit(2)
end
setfenv(chunk, env)
local lines = {}
debug.sethook(function(_, line)
  if debug.getinfo(2, "S").source == "=health.lua" then
    lines[line] = true
  end
end, "l")
-- No string library: without it gopher-lua gives strings no methods either.
local strings = getmetatable("")
local string_methods = strings.__index
strings.__index = nil
local ok, hs = pcall(chunk)
strings.__index = string_methods
debug.sethook()
if not ok then
  io.stderr:write("raised an error: ", tostring(hs), "\n")
  os.exit(3)
end
if type(hs) ~= "table" then
  io.stderr:write("returned a ", type(hs), ", not a table\n")
  os.exit(4)
end
if type(hs.status) ~= "string" or (hs.message ~= nil and type(hs.message) ~= "string")
    or (hs.deletionMessage ~= nil and type(hs.deletionMessage) ~= "string") then
  io.stderr:write("status must be a string, message and deletionMessage strings or nil; got ",
    type(hs.status), ", ", type(hs.message), " and ", type(hs.deletionMessage), "\n")
  os.exit(5)
end
io.write(hs.status, "\0", hs.message or "", "\0", hs.deletionMessage or "", "\0")
local ran = {}
for line in pairs(lines) do ran[#ran + 1] = line end
table.sort(ran)
io.write(table.concat(ran, " "))
"""


def run_case(lua, script, obj):
    program = "local f = assert(loadstring(%s, \"=driver\"))\nf(%s, %s)\n" % (
        lua_string(DRIVER), lua_string(script), lua_value(obj))
    proc = subprocess.run([lua, "-"], input=program.encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        raise AssertionError("health.lua " + proc.stderr.decode("utf-8", "replace").strip())
    status, message, deletion_message, ran = proc.stdout.decode("utf-8").split("\0")
    return (status, message, deletion_message), {int(x) for x in ran.split()}


# Lua 5.1 executes the JMP after these within the instruction itself, so no line event reaches it.
TESTS = {"EQ", "LT", "LE", "TEST", "TESTSET", "TFORLOOP"}


def executable_lines(luac, path):
    """Lines whose instructions a line hook can see: not each function's implicit final `RETURN 0 1`,
    nor a JMP that belongs to the test before it."""
    listing = subprocess.run([luac, "-l", "-p", path], capture_output=True, text=True, check=True).stdout
    lines = set()
    for function in re.split(r"\n(?=(?:main|function) <)", listing):
        instructions = re.findall(r"^\s+\d+\s+\[(\d+)\]\s+(\w+)\s*([^;\n]*)", function, re.M)
        if instructions and instructions[-1][1] == "RETURN" and instructions[-1][2].split() == ["0", "1"]:
            instructions = instructions[:-1]
        for i, (line, op, _) in enumerate(instructions):
            if op == "JMP" and i > 0 and instructions[i - 1][1] in TESTS:
                continue
            lines.add(int(line))
    return lines


def find_checks(paths):
    checks = []
    for path in paths:
        if os.path.isfile(os.path.join(path, "health_test.yaml")):
            checks.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs.sort()
            if "health_test.yaml" in files:
                checks.append(root)
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lua", default="lua5.1")
    parser.add_argument("--luac", default="luac5.1")
    parser.add_argument("--coverage", action="store_true", help="fail when a line of health.lua never ran")
    parser.add_argument("dirs", nargs="*", default=[os.path.join(HERE, "..", "..", "deploy", "argocd", "resource_customizations")])
    args = parser.parse_args()
    if shutil.which(args.lua) is None:
        sys.exit("%s not found (Debian: apt-get install lua5.1)" % args.lua)

    checks = find_checks(args.dirs)
    if not checks:
        sys.exit("no health_test.yaml under " + ", ".join(args.dirs))
    failures = 0
    for check in checks:
        name = "/".join(os.path.abspath(check).split(os.sep)[-2:])
        script_path = os.path.join(check, "health.lua")
        with open(script_path, encoding="utf-8") as f:
            script = f.read()
        cases = (load_yaml(os.path.join(check, "health_test.yaml")) or {}).get("tests") or []
        if not cases:
            print("FAIL %s: health_test.yaml lists no tests" % name)
            failures += 1
            continue
        ran = set()
        used = set()
        for case in cases:
            input_path = case["inputPath"]
            want = case["healthStatus"]
            used.add(os.path.normpath(input_path))
            try:
                got, lines = run_case(args.lua, script, load_yaml(os.path.join(check, input_path)))
                ran |= lines
                if got[0] not in STATUSES:
                    raise AssertionError("status %r is not one Argo CD knows" % got[0])
                expected = (want["status"], want.get("message", ""), want.get("deletionMessage", ""))
                if got != expected:
                    raise AssertionError("got %s %r %r, want %s %r %r" % (got + expected))
                print("ok   %s %s: %s: %s" % (name, input_path, got[0], got[1] or got[2]))
            except (AssertionError, OSError, ValueError, TypeError, yaml.YAMLError) as e:
                print("FAIL %s %s: %s" % (name, input_path, e))
                failures += 1
        testdata = os.path.join(check, "testdata")
        if os.path.isdir(testdata):
            for f in sorted(os.listdir(testdata)):
                if os.path.normpath(os.path.join("testdata", f)) not in used:
                    print("FAIL %s testdata/%s: no test uses it" % (name, f))
                    failures += 1
        if args.coverage:
            missed = sorted(executable_lines(args.luac, script_path) - ran)
            if missed:
                print("FAIL %s: lines of health.lua that no case runs: %s" % (name, ", ".join(map(str, missed))))
                failures += 1
            else:
                print("ok   %s: every line of health.lua ran" % name)
        print("%s: %d cases" % (name, len(cases)))
    if failures:
        print("%d failure(s)" % failures)
        sys.exit(1)


if __name__ == "__main__":
    main()
