import assert from "node:assert/strict";
import { parseOperatorOptions, relayAccessReviewAddress } from "./options.ts";

describe("operator options", () => {
  it("has generous defaults and a printable effective set", () => {
    const { options, printable } = parseOperatorOptions(["--namespace=ops"])!;
    assert.equal(options.namespace, "ops");
    assert.equal(options.leaderElect, true);
    assert.equal(options.leaseDurationMs, 15_000);
    assert.equal(options.maxStreams, 10_000);
    assert.equal(options.maxStreamsPerNamespace, 1000);
    assert.match(options.relayImage, /^ghcr\.io\/devicestreams\/devicestreams:/);
    // Streams get what users could get themselves without extra rights: no public exposure, modest Pods.
    assert.deepEqual(options.relayExposures, ["ClusterIP"]);
    assert.deepEqual(options.relayMax, { cpu: "1", memory: "512Mi" });
    assert.equal(printable.namespace, "ops");
    assert.ok(printable.identity, "the generated identity is printed");
  });

  it("tells relays the hub Service's name, the hub's own address when it binds one, or none without a hub", () => {
    const address = (argv: string[], bound?: number) =>
      relayAccessReviewAddress(parseOperatorOptions(["--namespace=ops", ...argv])!.options, bound);
    assert.equal(address([]), "devicestreams-hub.ops.svc:8444");
    assert.equal(address(["--hub-listen=127.0.0.1:9444"]), "127.0.0.1:9444");
    assert.equal(address(["--hub-listen=127.0.0.1:0"]), undefined, "not before the hub has its port");
    assert.equal(address(["--hub-listen=127.0.0.1:0"], 40123), "127.0.0.1:40123");
    assert.equal(address(["--hub-listen="]), undefined);
    assert.equal(address(["--relay-access-review-address=hub.example:443"]), "hub.example:443");
    assert.equal(
      address(["--hub-listen=", "--relay-access-review-address=hub.example:443"]),
      undefined,
      "no hub, no reviews",
    );
    assert.throws(() => address(["--relay-access-review-address=nope"]), /host:port/);
  });

  it("reads the flags as the chart writes them", () => {
    const { options } = parseOperatorOptions([
      "--namespace=ops",
      "--leader-elect=false",
      "--hub-listen=",
      "--hub-dns-names=a.example,b.example",
      "--hub-ip-addresses=127.0.0.1,10.0.0.1",
    ])!;
    assert.equal(options.leaderElect, false);
    assert.equal(options.hubListen, "", "an empty --hub-listen disables the hub");
    assert.deepEqual(options.hubDnsNames, ["a.example", "b.example"]);
    assert.deepEqual(options.hubIpAddresses, ["127.0.0.1", "10.0.0.1"]);
    const defaults = parseOperatorOptions(["--namespace=ops"])!.options;
    assert.equal(defaults.hubListen, "0.0.0.0:8444");
    assert.deepEqual(defaults.hubDnsNames, ["devicestreams-hub", "devicestreams-hub.ops.svc", "localhost"]);
  });

  it("reads DEVICESTREAMS_OPERATOR_* variables, flags win", () => {
    process.env.DEVICESTREAMS_OPERATOR_MAX_STREAMS = "7";
    try {
      assert.equal(parseOperatorOptions(["--namespace=ops"])!.options.maxStreams, 7);
      assert.equal(parseOperatorOptions(["--namespace=ops", "--max-streams=9"])!.options.maxStreams, 9);
    } finally {
      delete process.env.DEVICESTREAMS_OPERATOR_MAX_STREAMS;
    }
  });

  it("refuses values that cannot work, saying which flag and why", () => {
    const refuses = (argv: string[], re: RegExp) =>
      assert.throws(
        () => parseOperatorOptions(["--namespace=ops", ...argv]),
        (err: Error) => re.test(err.message),
      );
    refuses(
      ["--lease-duration=5s"],
      /--retry-period < --renew-deadline < --lease-duration must hold \(now 2s, 10s, 5s\)/,
    );
    refuses(["--max-streams=0"], /--max-streams must be at least 1/);
    refuses(["--workers=many"], /--workers must be a whole number/);
    refuses(["--leader-elect=yes"], /--leader-elect must be true or false/);
    refuses(["--relay-image-pull-policy=Sometimes"], /Always, IfNotPresent or Never/);
    refuses(["--resync-period=soon"], /--resync-period: "soon" is not a duration/);
    refuses(
      ["--relay-exposures=ClusterIP,Ingress"],
      /--relay-exposures must be one or more of ClusterIP, NodePort or LoadBalancer .*, not "ClusterIP,Ingress"/,
    );
    refuses(["--relay-exposures="], /--relay-exposures must be one or more of ClusterIP, NodePort or LoadBalancer/);
    refuses(["--relay-max-memory=lots"], /--relay-max-memory must be a positive Kubernetes quantity/);
    refuses(["--relay-max-cpu=0"], /--relay-max-cpu must be a positive Kubernetes quantity/);
    refuses(["--gateway-relay-domain=Relay Example"], /--gateway-relay-domain must be a DNS name/);
    assert.equal(
      parseOperatorOptions(["--namespace=ops", "--gateway-relay-domain=relay.example.com"])?.options.gatewayRelayDomain,
      "relay.example.com",
    );
    refuses(["--gateway-address=gw.example.com:443"], /--gateway-address needs --gateway-relay-domain/);
    refuses(
      ["--gateway-relay-domain=r.example.com", "--gateway-address=gw.example.com"],
      /--gateway-address must be host:port/,
    );
    refuses(
      ["--gateway-relay-domain=r.example.com", "--gateway-api-parent=public"],
      /--gateway-api-parent must be namespace\/name/,
    );
    const gw = parseOperatorOptions([
      "--namespace=ops",
      "--gateway-relay-domain=r.example.com",
      "--gateway-address=gw.example.com:443",
      "--gateway-api-parent=gateways/public/tls",
    ])?.options;
    assert.equal(gw?.gatewayAddress, "gw.example.com:443");
    assert.deepEqual(gw?.gatewayApiParent, { namespace: "gateways", name: "public", sectionName: "tls" });
    refuses(["--relay-memory-limit=1Gi"], /--relay-memory-limit=1Gi must not be more than --relay-max-memory=512Mi/);
    refuses(
      ["--relay-memory-request=300Mi"],
      /--relay-memory-request=300Mi must not be more than --relay-memory-limit/,
    );
  });
});
