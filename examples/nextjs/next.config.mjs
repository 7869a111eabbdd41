/** @type {import("next").NextConfig} */
export default {
  // The browser test builds into a directory of its own, so it never
  // disturbs a `next dev` running in .next.
  distDir: process.env.NEXT_DIST_DIR || ".next",
  // Types are checked by `npm run typecheck`; lint is not part of this example.
  eslint: { ignoreDuringBuilds: true },
};
