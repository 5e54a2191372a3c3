// The explorer's state cache, share 1 of 3 of the catalogue (explore-cache.ts).
import { stateCacheCliSuite, stateCacheSuite } from "./explore-cache.js";

stateCacheSuite(0, 3);
stateCacheCliSuite();
