// Entry point for operator replicas the tests run as real child processes.
import { runOperator } from "../../operator/main.ts";

await runOperator(process.argv.slice(2));
