// Where a test finds a Device's enrolment token: the Secret its status.enrollment names (in the
// operator's namespace), read as the cluster admin, as an administrator hands it to the device.
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { core, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import { waitFor } from "./wait.ts";

/** The token and where it was, once the operator has written it and said so in the Device's status. */
export async function readEnrollmentToken(
  admin: KubeClient,
  ns: string,
  name: string,
  timeoutMs?: number,
): Promise<{ token: string; secretNamespace: string; secretName: string }> {
  return waitFor(
    `the enrolment token of Device ${ns}/${name}`,
    async () => {
      const device = await admin.get<Device>(objectPath({ ...deviceResource }, ns, name));
      const at = device.status?.enrollment;
      if (!at?.secretNamespace || !at.secretName) return undefined;
      const s = await admin.get<Secret>(objectPath(core.secrets, at.secretNamespace, at.secretName));
      // A token for an earlier Device of this name is no use (the Secret name is the same).
      if (s.metadata.labels?.["devicestreams.io/device-uid"] !== device.metadata.uid) return undefined;
      const token = Buffer.from(s.data!.token!, "base64").toString("utf8");
      return { token, secretNamespace: at.secretNamespace, secretName: at.secretName };
    },
    timeoutMs,
  );
}
