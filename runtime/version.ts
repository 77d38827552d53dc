// Read once from package.json so every component and /metrics agree. An import rather than a file
// read, so the compiled package (dist/) and the single-file agent (packaging/sea) carry it too.
import packageJson from "../package.json" with { type: "json" };

export const version: string = packageJson.version;
