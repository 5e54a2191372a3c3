// Prints the JSON Schema of the scenario format to stdout. Regenerate the
// published copy with:
//   npm run build && node dist/src/cli/gen-schema.js > docs/scenario.schema.json
import { scenarioJsonSchema } from "../scenario/schema.js";

process.stdout.write(`${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
