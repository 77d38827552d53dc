// How a data-path call on node:http2 ends, as a grpc-js StatusObject with the code and words
// grpc-js itself would give (subchannel-call.ts): transport/call-error.ts reads causes from those
// words, and every caller of the relay client already speaks StatusObject.
import { constants, type IncomingHttpHeaders } from "node:http2";
import { Metadata, type StatusObject, status } from "@grpc/grpc-js";
import { decodeGrpcMessage, grpcContentType } from "./grpc-wire.ts";

const { NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = constants;
const { NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_INTERNAL_ERROR } = constants;

export function callStatus(code: status, details: string, metadata = new Metadata()): StatusObject {
  return { code, details, metadata };
}

/** gRPC's mapping of an HTTP status to a call status (gRPC doc "HTTP to gRPC Status Code Mapping"). */
const httpCodes: Record<number, status> = {
  400: status.INTERNAL,
  401: status.UNAUTHENTICATED,
  403: status.PERMISSION_DENIED,
  404: status.UNIMPLEMENTED,
  429: status.UNAVAILABLE,
  502: status.UNAVAILABLE,
  503: status.UNAVAILABLE,
  504: status.UNAVAILABLE,
};

/**
 * A response that is not gRPC: a status other than 200, or another content-type (a web server or
 * a plain HTTP/2 proxy at the address). grpc-js's words first, then what was there instead.
 */
export function notGrpc(headers: IncomingHttpHeaders): StatusObject | undefined {
  const http = Number(headers[":status"]);
  const type = String(headers["content-type"] ?? "");
  if (http === 200 && type.startsWith(grpcContentType)) return undefined;
  const seen = `content-type ${JSON.stringify(type || "none")}`;
  if (http !== 200) {
    return callStatus(
      httpCodes[http] ?? status.UNKNOWN,
      `Received HTTP status code ${http} (${seen}): not a gRPC server`,
    );
  }
  return callStatus(status.UNKNOWN, `Received HTTP status code 200 with ${seen}: not a gRPC server`);
}

/** The status in trailers (or a trailers-only response); grpc-message is percent-decoded. */
export function trailerStatus(headers: IncomingHttpHeaders): StatusObject {
  let metadata: Metadata;
  try {
    metadata = Metadata.fromHttp2Headers(headers);
  } catch {
    metadata = new Metadata();
  }
  const code = headers["grpc-status"];
  if (typeof code !== "string") {
    return callStatus(status.UNKNOWN, "No status information received", metadata);
  }
  metadata.remove("grpc-status");
  metadata.remove("grpc-message");
  const message = headers["grpc-message"];
  return callStatus(Number(code), typeof message === "string" ? decodeGrpcMessage(message) : "", metadata);
}

/** A stream closed without a status: by RST_STREAM, or by the loss of its connection. */
export function resetStatus(rstCode: number, o: { connectionDropped: boolean; error?: NodeJS.ErrnoException }) {
  if (o.connectionDropped) return callStatus(status.UNAVAILABLE, "Connection dropped");
  switch (rstCode) {
    case NGHTTP2_NO_ERROR:
      return callStatus(status.INTERNAL, `Received RST_STREAM with code ${rstCode} (Call ended without gRPC status)`);
    case NGHTTP2_REFUSED_STREAM:
      return callStatus(status.UNAVAILABLE, "Stream refused by server");
    case NGHTTP2_CANCEL:
      return callStatus(status.CANCELLED, "Call cancelled");
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return callStatus(status.RESOURCE_EXHAUSTED, "Bandwidth exhausted or memory limit exceeded");
    case NGHTTP2_INADEQUATE_SECURITY:
      return callStatus(status.PERMISSION_DENIED, "Protocol not secure enough");
    case NGHTTP2_INTERNAL_ERROR:
      if (o.error?.code === "ECONNRESET" || o.error?.code === "ETIMEDOUT") {
        return callStatus(status.UNAVAILABLE, o.error.message);
      }
      return callStatus(
        status.INTERNAL,
        o.error
          ? `Received RST_STREAM with code ${rstCode} triggered by internal client error: ${o.error.message}`
          : `Received RST_STREAM with code ${rstCode} (Internal server error)`,
      );
    default:
      return callStatus(status.INTERNAL, `Received RST_STREAM with code ${rstCode}`);
  }
}

/** What grpc-js emits as 'error' beside a failed status (a ServiceError). */
export function statusError(s: StatusObject): Error & StatusObject {
  return Object.assign(new Error(`${s.code} ${status[s.code]}: ${s.details}`), s);
}
