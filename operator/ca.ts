// The operator's certificate authority, kept in a Secret in its own namespace. The first replica
// to start creates it; create-or-get makes that race-safe when several start at once.

import { labels, managedByValue } from "../api/constants.ts";
import { collectionPath, core, isAlreadyExists, isNotFound, type KubeClient, objectPath } from "../kube/client.ts";
import type { Secret } from "../kube/types.ts";
import { retry } from "../runtime/backoff.ts";
import { describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { createCertificateAuthority, type KeyPairPem } from "../runtime/pki.ts";

function fromSecret(secret: Secret, where: string): KeyPairPem {
  const d = secret.data ?? {};
  if (!d["tls.crt"] || !d["tls.key"]) {
    throw new Error(`${where} lacks tls.crt or tls.key; delete it and the operator will create a new CA`);
  }
  return {
    certPem: Buffer.from(d["tls.crt"], "base64").toString("utf8"),
    keyPem: Buffer.from(d["tls.key"], "base64").toString("utf8"),
  };
}

export async function loadOrCreateCA(
  client: KubeClient,
  namespace: string,
  name: string,
  fieldManager: string,
  log: Logger,
): Promise<KeyPairPem> {
  const path = objectPath(core.secrets, namespace, name);
  const where = `Secret ${namespace}/${name}`;
  try {
    return fromSecret(await client.get<Secret>(path), where);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const ca = await createCertificateAuthority("devicestreams relay CA");
  const secret: Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name,
      namespace,
      labels: { [labels.partOf]: "devicestreams", [labels.managedBy]: managedByValue, [labels.component]: "ca" },
    },
    type: "kubernetes.io/tls",
    data: {
      "tls.crt": Buffer.from(ca.certPem).toString("base64"),
      "tls.key": Buffer.from(ca.keyPem).toString("base64"),
    },
  };
  try {
    await client.create(collectionPath(core.secrets, namespace), secret, fieldManager);
    log.info("created the relay certificate authority", { in: `${namespace}/${name}` });
    return ca;
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    // Another replica won the race: use its CA.
    return fromSecret(await client.get<Secret>(path), where);
  }
}

/**
 * The CA as every replica needs it (the hub everywhere, the relays' Secrets on the leader): loaded
 * once, retrying with backoff until the Secret can be read or created.
 */
export class OperatorCA {
  private ca: KeyPairPem | undefined;
  private readonly load: () => Promise<KeyPairPem>;
  private readonly log: Logger;

  constructor(client: KubeClient, namespace: string, secret: string, fieldManager: string, log: Logger) {
    this.load = () => loadOrCreateCA(client, namespace, secret, fieldManager, log);
    this.log = log;
  }

  /** The CA once loaded; undefined if `signal` aborted first. */
  async loaded(signal: AbortSignal): Promise<KeyPairPem | undefined> {
    this.ca ??= await retry(this.load, signal, (err, retryInMs) =>
      this.log.warn("cannot load or create the relay CA; retrying", { error: describeError(err), retryInMs }),
    );
    return this.ca;
  }

  /** The CA if loaded yet (metrics read it whenever Prometheus scrapes). */
  current(): KeyPairPem | undefined {
    return this.ca;
  }

  /** For code that runs only after `loaded` (reconciles, the hub). */
  get(): KeyPairPem {
    if (!this.ca) throw new Error("the relay CA is not loaded yet");
    return this.ca;
  }
}
