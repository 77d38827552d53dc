// What stays of a DeviceStream once it is gone: when its finalizer runs (deleted by a user, or by
// the operator after spec.ttlSecondsAfterFinished), a record of it goes into its Device's
// status.recentStreams, newest first and at most `maxRecords`, so an administrator still sees who
// used the device, when, how many bytes and how each stream ended.
//
// The list is read fresh and applied with its resourceVersion: streams of one device may end
// together (and on another replica after a leader change), and a write from a stale copy would
// drop a record. A conflict reads again.
import { conditionTypes, historyFieldManager } from "../../api/constants.ts";
import { condition, isTerminal, streamServices } from "../../api/devicestream.ts";
import { type Device, type DeviceStream, deviceResource, type StreamRecord } from "../../api/v1alpha1.ts";
import { isConflict, isNotFound, type KubeClient, objectPath } from "../../kube/client.ts";

export const maxRecords = 10;
const attempts = 5;

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/** The record of `ds` as it is now; a stream deleted before it ended ends now, reason Deleted. */
export function streamRecord(ds: DeviceStream, now: number): StreamRecord {
  const s = ds.status;
  const ended = isTerminal(s?.phase);
  // status.lastConnection (who last connected) is written by the relay path where it exists.
  const user = (s as { lastConnection?: { user?: string } } | undefined)?.lastConnection?.user;
  const services = streamServices(ds.spec);
  const record: StreamRecord = {
    name: ds.metadata.name!,
    uid: ds.metadata.uid!,
    service: services[0] ?? "",
    ...(services.length > 1 ? { services } : {}),
    ...(user ? { user: user.slice(0, 512) } : {}),
    ...(ds.metadata.creationTimestamp ? { createdAt: ds.metadata.creationTimestamp } : {}),
    ...(s?.connectedAt ? { connectedAt: s.connectedAt } : {}),
    endedAt: (ended && s?.endedAt) || iso(now),
    phase: s?.phase ?? "Pending",
    reason: ended ? (condition(s, conditionTypes.ready)?.reason ?? "Ended") : "Deleted",
    bytes: { toDevice: s?.bytes?.toDevice ?? 0, fromDevice: s?.bytes?.fromDevice ?? 0 },
  };
  return record;
}

/** `list` with `record` in it (replacing one of the same UID), newest end first, at most maxRecords. */
export function withRecord(list: StreamRecord[] | undefined, record: StreamRecord): StreamRecord[] {
  const rest = (list ?? []).filter((r) => r.uid !== record.uid);
  return [record, ...rest]
    .sort((a, b) => Date.parse(b.endedAt ?? "") - Date.parse(a.endedAt ?? "") || 0)
    .slice(0, maxRecords);
}

/** The last write queued per Device (`namespace/name`): see recordOnDevice. */
const queued = new Map<string, Promise<void>>();

/**
 * Adds the record of `ds` to its Device; a Device that is gone keeps nothing. Records for one
 * Device are written one after another: workers finalizing many streams of one Device at once
 * would otherwise conflict with each other and read again, about six requests per stream for 200.
 */
export function recordOnDevice(client: KubeClient, ds: DeviceStream, now: number): Promise<void> {
  const key = `${ds.metadata.namespace}/${ds.spec.device}`;
  const run = (queued.get(key) ?? Promise.resolve()).then(() => writeRecord(client, ds, now));
  const tail = run.catch(() => undefined);
  queued.set(key, tail);
  void tail.then(() => {
    if (queued.get(key) === tail) queued.delete(key);
  });
  return run;
}

async function writeRecord(client: KubeClient, ds: DeviceStream, now: number): Promise<void> {
  const ns = ds.metadata.namespace!;
  const path = objectPath({ ...deviceResource }, ns, ds.spec.device);
  const record = streamRecord(ds, now);
  for (let i = 1; ; i++) {
    let device: Device;
    try {
      device = await client.get<Device>(path);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (device.status?.recentStreams?.some((r) => r.uid === record.uid && r.endedAt === record.endedAt)) return;
    const body = {
      apiVersion: device.apiVersion,
      kind: device.kind,
      metadata: { name: device.metadata.name, namespace: ns, resourceVersion: device.metadata.resourceVersion },
      status: { recentStreams: withRecord(device.status?.recentStreams, record) },
    };
    try {
      await client.apply(`${path}/status`, body, historyFieldManager);
      return;
    } catch (err) {
      if (isNotFound(err)) return;
      if (!isConflict(err) || i >= attempts) throw err;
    }
  }
}
