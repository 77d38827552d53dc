import assert from "node:assert/strict";
import { optionHelp, usage } from "./option-text.ts";
import { type OptionSpecs, printable, readCommandLine, toArgv } from "./options.ts";

const specs = {
  name: { kind: "string", description: "a name" },
  mode: { kind: "string", choices: ["fast", "safe"] as const, description: "a choice", default: "safe" },
  path: { kind: "file", description: "a file", required: true },
  wait: { kind: "duration", description: "a duration", default: "5s" },
  count: { kind: "integer", min: 1, description: "a positive integer", default: "3" },
  port: { kind: "integer", min: 0, max: 65535, description: "a bounded integer" },
  verbose: { kind: "boolean", description: "a boolean" },
  on: { kind: "boolean", description: "a boolean on by default", default: "true" },
  allow: { kind: "list", description: "a list" },
  listen: { kind: "address", description: "an address", default: "0.0.0.0:80", emptyDisables: true },
  local: { kind: "address", defaultHost: "127.0.0.1", short: "L", description: "a local address" },
  secret: { kind: "string", description: "a secret", secret: true },
} satisfies OptionSpecs;

const cmd = { name: "devicestreams test", env: "test" };
const read = (argv: string[]) => readCommandLine(specs, ["--path=/p", ...argv], cmd).values;

/** Runs with DEVICESTREAMS_TEST_* variables set, and removes them after. */
function withEnv<T>(env: Record<string, string>, body: () => T): T {
  Object.assign(process.env, env);
  try {
    return body();
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
  }
}

/** Refused with DS_USAGE and a message matching `re`. */
function refuses(argv: string[], re: RegExp, env: Record<string, string> = {}) {
  withEnv(env, () =>
    assert.throws(
      () => read(argv),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "DS_USAGE", err.message);
        assert.match(err.message, re);
        return true;
      },
    ),
  );
}

describe("options", () => {
  it("parses each kind into its type, with defaults", () => {
    const v = read([]);
    assert.deepEqual(v, {
      name: undefined,
      mode: "safe",
      path: "/p",
      wait: 5000,
      count: 3,
      port: undefined,
      verbose: false,
      on: true,
      allow: [],
      listen: "0.0.0.0:80",
      local: undefined,
      secret: undefined,
    });
    const w = read([
      "--name",
      "n",
      "--mode=fast",
      "--wait=1m30s",
      "--count",
      "7",
      "--port=0",
      "--verbose",
      "--on=false",
      "--allow=a=1:2,b=3:4",
      "--allow",
      "c=5:6",
      "--listen=[::1]:8443",
      "-L",
      "2222",
    ]);
    assert.equal(w.name, "n");
    assert.equal(w.mode, "fast");
    assert.equal(w.wait, 90_000);
    assert.equal(w.count, 7);
    assert.equal(w.port, 0);
    assert.equal(w.verbose, true);
    assert.equal(w.on, false);
    assert.deepEqual(w.allow, ["a=1:2", "b=3:4", "c=5:6"]);
    assert.equal(w.listen, "[::1]:8443");
    assert.equal(w.local, "127.0.0.1:2222", "a bare port means the default host");
    assert.equal(read(["--local=0.0.0.0:2222"]).local, "0.0.0.0:2222");
    assert.equal(read(["--verbose=true"]).verbose, true);
  });

  it("reads -0 as 0, which writes back the same (found by fuzzing)", () => {
    assert.ok(Object.is(read(["--port=-0"]).port, 0));
  });

  it("lets the last of a repeated flag win, except for lists", () => {
    assert.equal(read(["--count=2", "--count=5"]).count, 5);
  });

  it("turns an empty value off only where the spec says so", () => {
    assert.equal(read(["--listen="]).listen, undefined);
    assert.equal(read(["--name="]).name, undefined);
    assert.deepEqual(read(["--allow="]).allow, []);
    refuses(["--count="], /--count needs a value \(a whole number >= 1\)/);
  });

  it("reads DEVICESTREAMS_<COMMAND>_<FLAG>; a flag wins over the variable", () => {
    const env = {
      DEVICESTREAMS_TEST_COUNT: "9",
      DEVICESTREAMS_TEST_VERBOSE: "true",
      DEVICESTREAMS_TEST_ALLOW: "x=1:1,y=2:2",
      DEVICESTREAMS_TEST_WAIT: "250ms",
    };
    withEnv(env, () => {
      const v = read([]);
      assert.equal(v.count, 9);
      assert.equal(v.verbose, true);
      assert.deepEqual(v.allow, ["x=1:1", "y=2:2"]);
      assert.equal(v.wait, 250);
      assert.equal(read(["--count=4"]).count, 4);
      assert.equal(read(["--verbose=false"]).verbose, false);
    });
    withEnv({ DEVICESTREAMS_TEST_PATH: "/from-env" }, () => {
      assert.equal(readCommandLine(specs, [], cmd).values.path, "/from-env");
    });
  });

  it("reads no variables for a command line without them", () => {
    withEnv({ DEVICESTREAMS_TEST_COUNT: "9" }, () => {
      assert.equal(readCommandLine(specs, ["--path=/p"], { name: "x" }).values.count, 3);
    });
  });

  it("refuses a positive integer of 0, and any value out of bounds", () => {
    refuses(["--count=0"], /^--count must be at least 1, not "0"$/);
    refuses(["--count=-3"], /--count must be at least 1/);
    refuses(["--port=65536"], /--port must be at most 65535, not "65536"/);
    assert.equal(read(["--count=1"]).count, 1);
  });

  it("refuses bad values naming the flag and what it expects", () => {
    refuses(["--count=many"], /^--count must be a whole number >= 1, not "many"$/);
    refuses(["--count=1.5"], /--count must be a whole number >= 1, not "1.5"/);
    refuses(["--count=1e3"], /--count must be a whole number/);
    refuses(["--port=0x10"], /--port must be a whole number from 0 to 65535/);
    refuses(["--wait=soon"], /^--wait: "soon" is not a duration: write for example 500ms/);
    refuses(["--wait=10"], /--wait: "10" is not a duration/);
    refuses(["--mode=slow"], /^--mode must be fast or safe, not "slow"$/);
    refuses(["--on=yes"], /^--on must be true or false, not "yes"$/);
    refuses(["--listen=localhost"], /^--listen: "localhost" is not an address: write host:port/);
    refuses(["--listen=h:99999"], /--listen: "h:99999" has port 99999, above 65535/);
    refuses(["--local=host"], /--local: "host" is not an address/);
  });

  it("takes a list of choices only of them, and at least one", () => {
    const picks = {
      pick: { kind: "list", choices: ["a", "b", "c"] as const, description: "some choices", default: "a" },
    } satisfies OptionSpecs;
    const pick = (argv: string[]) => readCommandLine(picks, argv, cmd).values.pick;
    assert.deepEqual(pick([]), ["a"]);
    assert.deepEqual(pick(["--pick=b,c", "--pick=a"]), ["b", "c", "a"]);
    const expects = /^--pick must be one or more of a, b or c \(a comma list, or the flag repeated\), not "(a,d|)"$/;
    for (const argv of [["--pick=a,d"], ["--pick="]]) {
      assert.throws(
        () => pick(argv),
        (err: Error & { code?: string }) => err.code === "DS_USAGE" && expects.test(err.message),
        argv[0],
      );
    }
    assert.match(usage("test", "Tests options.", picks), /--pick a\|b\|c\[,\.\.\.\]\n {6}some choices/);
  });

  it("names the environment variable when a bad value came from there", () => {
    refuses([], /^--count \(from DEVICESTREAMS_TEST_COUNT\) must be a whole number >= 1, not "x"$/, {
      DEVICESTREAMS_TEST_COUNT: "x",
    });
    refuses([], /^--wait \(from DEVICESTREAMS_TEST_WAIT\): "1d" is not a duration/, { DEVICESTREAMS_TEST_WAIT: "1d" });
    refuses([], /^--on \(from DEVICESTREAMS_TEST_ON\) must be true or false, not "1"$/, { DEVICESTREAMS_TEST_ON: "1" });
  });

  it("refuses a missing required option, naming the flag and its variable", () => {
    assert.throws(
      () => readCommandLine(specs, [], cmd),
      (err: Error & { code?: string }) =>
        err.code === "DS_USAGE" &&
        /^--path is required \(or set DEVICESTREAMS_TEST_PATH\): a file path; run `devicestreams test --help`/.test(
          err.message,
        ),
    );
    refuses(["--path="], /--path is required/);
  });

  it("refuses unknown flags, stray arguments and flags without their value", () => {
    refuses(["--nope=1"], /^unknown option --nope; run `devicestreams test --help` for the options$/);
    refuses(["--verbos"], /^unknown option --verbos; did you mean --verbose\? run `devicestreams test --help`/);
    refuses(["--lisen=:80"], /did you mean --listen\?/);
    refuses(["-x"], /^unknown option -x/);
    refuses(["extra"], /^unexpected argument "extra"; run `devicestreams test --help`/);
    refuses(["--verbose", "true"], /unexpected argument "true"/);
    refuses(["--name"], /^--name needs a value \(text\), got nothing$/);
    refuses(["--name", "--verbose"], /--name needs a value \(text\), got "--verbose"; write --name=VALUE for one/);
    assert.equal(read(["--name=-dash"]).name, "-dash");
    // Found by fuzzing: the hint gave the short form, and parseArgs reads `-L=-1` as the value "=-1".
    refuses(["-L", "-1"], /-L needs a value \(.*\), got "-1"; write --local=VALUE for one that starts with -$/);
  });

  it("allows positionals where the command line says so", () => {
    const r = readCommandLine(specs, ["open", "--path=/p", "dev"], { name: "kubectl x", positionals: true });
    assert.deepEqual(r.positionals, ["open", "dev"]);
  });

  it("answers --help before checking anything else", () => {
    const r = readCommandLine(specs, ["--count=0", "-h"], cmd);
    assert.equal(r.help, true);
    assert.equal(readCommandLine(specs, ["--help"], cmd).help, true);
  });

  it("describes every option, its kind, default and variable in --help", () => {
    const text = usage("test", "Tests options.", specs);
    assert.match(text, /^Usage: devicestreams test \[options\]/);
    for (const flag of Object.keys(specs)) assert.match(text, new RegExp(`--${flag}\\b`));
    assert.match(text, /--count N\n {6}a positive integer \(N >= 1; default 3\)\n {6}\[env DEVICESTREAMS_TEST_COUNT\]/);
    assert.match(text, /--port N\n {6}a bounded integer \(N from 0 to 65535\)\n/);
    assert.match(text, /--allow VALUE\[,VALUE\.\.\.\]\n {6}a list \(repeatable\)/);
    assert.match(text, /-L, --local \[HOST:\]PORT\n {6}a local address \(host 127\.0\.0\.1 when omitted\)/);
    assert.match(text, /-L, --local \[HOST:\]PORT/);
    assert.match(text, /--verbose\n/);
    assert.match(text, /--path PATH\n {6}a file \(required\)/);
    assert.match(text, /--mode fast\|safe\n {6}a choice \(default safe\)/);
    assert.doesNotMatch(optionHelp(specs).join("\n"), /\[env /, "no variables when the command reads none");
  });

  it("prints the effective set with secrets redacted", () => {
    const p = printable(specs, read(["--secret=s3cret", "--allow=a=1:1,b=2:2"]));
    assert.equal(p.secret, "[redacted]");
    assert.equal(p.wait, "5s");
    assert.equal(p.allow, "a=1:1,b=2:2");
    assert.equal(p.name, undefined);
    assert.doesNotMatch(JSON.stringify(p), /s3cret/);
  });

  it("writes typed values back as flags that parse to the same values", () => {
    const values = read(["--wait=1500ms", "--verbose", "--on=false", "--allow=a=1:1,b=2:2", "-L", "9"]);
    const argv = toArgv(specs, { ...values, secret: "s" });
    assert.ok(argv.includes("--wait=1s500ms"), argv.join(" "));
    assert.deepEqual(readCommandLine(specs, argv, cmd).values, { ...values, secret: "s" });
    assert.deepEqual(toArgv(specs, { path: "/p", wait: "5m", count: undefined }), ["--path=/p", "--wait=5m"]);
  });
});
