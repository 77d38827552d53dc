// Root hooks of the real-node tier (npm run test:node): the node is stopped once every test has run.
import { stopNodeCluster } from "./node-cluster.ts";

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(300_000);
    await stopNodeCluster();
  },
};
