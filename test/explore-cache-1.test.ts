// The explorer's state cache, share 2 of 3 of the catalogue (explore-cache.ts).
import { stateCacheSuite } from "./explore-cache.js";

stateCacheSuite(1, 3);
