// A stream is bound to its Device when its relay is made: relay.json names the Device, its UID
// when it exists and its enrolled key when it has one, and the relay then admits the device side
// only with a certificate of that Device (relay/device-auth.ts). An enrolled key is recorded in
// status.device too, before the relay exists, so that offers (hub/offers.ts forDevice) and
// revocation (device-revocation.ts) judge by the same key the relay admits: a Device enrolled
// again before it took the stream ends it rather than leaving it unreachable.
import { bindingFieldManager } from "../../api/constants.ts";
import { type DeviceStream, deviceStreamResource } from "../../api/v1alpha1.ts";
import { objectPath } from "../../kube/client.ts";
import type { BoundDevice } from "../../relay/contract.ts";
import type { ReconcileContext } from "./context.ts";

export async function bindDevice(ctx: ReconcileContext, ds: DeviceStream): Promise<BoundDevice> {
  const namespace = ds.metadata.namespace!;
  const name = ds.spec.device;
  const recorded = ds.status?.device;
  if (recorded?.uid) return { namespace, name, uid: recorded.uid, publicKeySHA256: recorded.publicKeySHA256 };
  const device = ctx.devices.get(namespace, name);
  // Not there yet: whichever Device of this name takes the stream is recorded by the hub, and
  // revocation ends the stream if that one goes.
  if (!device || device.metadata.deletionTimestamp) return { namespace, name };
  const uid = device.metadata.uid!;
  const key = device.spec?.identity?.publicKeySHA256;
  if (!key) return { namespace, name, uid };
  const body = {
    apiVersion: ds.apiVersion,
    kind: ds.kind,
    // The UID makes it fail rather than bind a newer stream of the same name.
    metadata: { name: ds.metadata.name, namespace, uid: ds.metadata.uid },
    status: { device: { uid, publicKeySHA256: key } },
  };
  await ctx.client.apply(
    objectPath({ ...deviceStreamResource }, namespace, ds.metadata.name!, "status"),
    body,
    bindingFieldManager,
  );
  return { namespace, name, uid, publicKeySHA256: key };
}
