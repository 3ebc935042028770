import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { controlPlaneProxy } from "./build/dev-proxy.ts";
import { mantineThemeCssPlugin } from "./build/mantine-css.ts";

// The control plane that `npm run dev` / `npm run preview` forward grpc-web calls to.
const controlPlane = process.env.KEYGATE_DEV_CONTROL_PLANE ?? "http://127.0.0.1:7000";

// The policy the control plane serves the UI with; `vite preview` uses it too, so a
// production build is checked against it before the control plane serves it.
export const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:";

export default defineConfig({
  plugins: [react(), mantineThemeCssPlugin(async () => (await import("./src/theme.ts")).theme)],
  server: {
    host: "127.0.0.1",
    proxy: controlPlaneProxy(controlPlane),
  },
  preview: {
    host: "127.0.0.1",
    proxy: controlPlaneProxy(controlPlane),
    headers: { "Content-Security-Policy": CONTENT_SECURITY_POLICY },
  },
  build: {
    target: "es2022",
    sourcemap: false,
    // The budget that matters is gzip size of the entry (scripts/check-budget.mjs).
    chunkSizeWarningLimit: 1000,
  },
});
