// convex/authstore.ts of the README.
export { record, cleanup } from "@authstore/authjs/convex";
