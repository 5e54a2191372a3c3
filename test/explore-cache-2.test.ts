// The explorer's state cache, share 3 of 3 of the catalogue (explore-cache.ts).
import { stateCacheSuite } from "./explore-cache.js";

stateCacheSuite(2, 3);
