import { defineConfig } from "vitest/config";

// Unit tests of pure helpers (no DOM, no server).
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "build/**/*.test.ts"],
    environment: "node",
  },
});
