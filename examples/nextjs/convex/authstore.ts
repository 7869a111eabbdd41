// The internal mutations the HTTP action and the scheduled cleanup run.
export { record, cleanup } from "@authstore/authjs/convex";
