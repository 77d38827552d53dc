// The secret every operator replica derives from the CA's private key for the hub's tokens
// (enrolment tokens and streams' destination tokens): shared without a Secret to read.
import type { KeyPairPem } from "../../runtime/pki.ts";
import { tokenKey } from "./enrollment-token.ts";

export const hubTokenKey = (ca: KeyPairPem): Buffer => tokenKey(ca.keyPem, "hub tokens");
