// Whether the Device a stream is bound to still stands behind it. status.device holds its UID and
// enrolled key (reconcile/device-binding.ts at the relay's creation, else the hub from the
// certificate of the device that accepted); a stream outlives neither
// that Device nor its key, so disabling, deleting, re-creating (another UID) or re-keying it ends
// the stream, and with it the relay, rather than leaving the old device reachable until a timeout.
import { conditionTypes } from "../../api/constants.ts";
import { condition, reasons } from "../../api/devicestream.ts";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";

export interface Revocation {
  reason: string;
  message: string;
}

function attached(ds: DeviceStream): boolean {
  return condition(ds.status, conditionTypes.deviceAccepted)?.status === "True" || !!ds.status?.connectedAt;
}

/** Why the stream must end because of its Device, if it must; `device` is the Device in the cache now. */
export function deviceRevocation(ds: DeviceStream, device: Device | undefined): Revocation | undefined {
  const by = ds.status?.device;
  // A stream no device took yet just waits (a stream made before its Device exists is fine).
  if (!by?.uid && !attached(ds)) return undefined;
  const name = `Device "${ds.spec.device}"`;
  if (!device || device.metadata.deletionTimestamp) {
    return {
      reason: reasons.deviceDeleted,
      message: `${name} was deleted, which revokes its access; the stream ended`,
    };
  }
  if (by?.uid && device.metadata.uid !== by.uid) {
    return {
      reason: reasons.deviceRevoked,
      message: `${name} was deleted and created again (UID ${by.uid} accepted the stream, it is now ${device.metadata.uid}); the stream ended — create a new one for the new Device`,
    };
  }
  if (device.spec?.disabled) {
    return {
      reason: reasons.deviceRevoked,
      message: `${name} was disabled (spec.disabled), which revokes its access; the stream ended`,
    };
  }
  const key = device.spec?.identity?.publicKeySHA256;
  if (by?.publicKeySHA256 && key !== by.publicKeySHA256) {
    return {
      reason: reasons.deviceRevoked,
      message: `${name} enrolled another key (SHA-256 ${key ?? "none"}) than the one the stream is bound to (${by.publicKeySHA256}); the stream ended`,
    };
  }
  return undefined;
}
