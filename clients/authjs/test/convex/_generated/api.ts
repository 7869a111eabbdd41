// What `npx convex codegen` would write, reduced to what these tests use.
export { anyApi as api, anyApi as internal } from "convex/server";
