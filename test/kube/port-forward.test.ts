// Port-forward through the real API server to the kubelet stand-in's port-forward server: the way
// `kubectl devicestream` reaches a relay when only the API server is reachable. Bytes are checked
// by hash both ways; a missing permission and a closed port are named.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { forwardViaApiServer } from "../../client/apiserver-forward.ts";
import { KubeClient } from "../../kube/client.ts";
import type { DeviceStreamsError } from "../../runtime/errors.ts";
import { createLogger } from "../../runtime/log.ts";
import { freePort } from "../helpers/free-port.ts";
import { startTestCluster, type TestCluster } from "../helpers/kube-apiserver.ts";
import { type PortForwardServer, registerNode, startPortForwardServer } from "../helpers/kubelet-portforward.ts";
import { echoServer, sha256, type TcpTarget } from "../helpers/tcp-targets.ts";

const ns = "pf";
const node = "pf-node";

describe("kube: port-forward through the API server", function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let admin: KubeClient;
  let kubelet: PortForwardServer;
  let echo: TcpTarget;
  const notes: string[] = [];
  const log = createLogger("port-forward-test");

  before(async () => {
    [cluster, echo] = await Promise.all([startTestCluster(), echoServer()]);
    admin = new KubeClient(cluster.kubeConfig);
    kubelet = await startPortForwardServer(
      cluster.kubelet,
      (namespace, name) => (namespace === ns && name === "echo" ? "127.0.0.1" : undefined),
      (line) => notes.push(line),
    );
    await registerNode(admin, node, kubelet.port, "test");
    await admin.apply(`/api/v1/namespaces/${ns}`, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }, "t");
    await admin.create(
      `/api/v1/namespaces/${ns}/pods`,
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "echo" },
        spec: { nodeName: node, containers: [{ name: "echo", image: "echo" }] },
      },
      "t",
    );
  });
  after(async () => {
    await kubelet?.close();
    admin?.close();
    await echo?.close();
    await cluster?.stop();
  });

  /** Sends `data` through a local port and reads the echo back. */
  const roundTrip = (address: string, data: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const [host, port] = address.split(":");
      const s = connect({ host, port: Number(port) }, () => s.write(data));
      const got: Buffer[] = [];
      let size = 0;
      s.on("data", (c: Buffer) => {
        got.push(c);
        size += c.length;
        if (size >= data.length) {
          s.end();
          resolve(Buffer.concat(got));
        }
      });
      s.on("error", reject);
      s.on("close", () => size < data.length && reject(new Error(`closed after ${size} of ${data.length} bytes`)));
    });

  it("carries 16 MiB both ways, byte-exact, over several connections at once", async () => {
    const forward = await forwardViaApiServer(cluster.kubeConfig, ns, "echo", echo.port, log);
    try {
      const payloads = [randomBytes(16 << 20), randomBytes(1 << 20), randomBytes(1)];
      const back = await Promise.all(payloads.map((p) => roundTrip(forward.address, p)));
      for (const [i, b] of back.entries()) assert.equal(sha256(b), sha256(payloads[i]!), `connection ${i}`);
    } finally {
      await forward.close();
    }
  });

  it("names the missing pods/portforward permission before offering a port", async () => {
    const user = cluster.impersonate("mallory");
    await assert.rejects(forwardViaApiServer(user, ns, "echo", echo.port, log), (err: DeviceStreamsError) => {
      assert.equal(err.code, "DS_FORBIDDEN");
      assert.match(err.message, /pods\/portforward/);
      assert.match(err.message, /mallory/);
      return true;
    });
  });

  it("says the Pod is gone when it does not exist", async () => {
    await assert.rejects(forwardViaApiServer(cluster.kubeConfig, ns, "gone", echo.port, log), /gone.*not found/s);
  });

  it("ends the connection, with the kubelet's reason logged, when nothing listens on the port", async () => {
    const closed = await freePort();
    const forward = await forwardViaApiServer(cluster.kubeConfig, ns, "echo", closed, log);
    try {
      await assert.rejects(roundTrip(forward.address, Buffer.from("hello")), /closed after 0 of 5 bytes|ECONNRESET/);
    } finally {
      await forward.close();
    }
  });
});
