/**
 * Build-time Mantine CSS: the theme's CSS variables and Mantine's global helper classes as a
 * static stylesheet (`virtual:mantine-theme.css`), so that MantineProvider can run with
 * `withCssVariables={false}` and `withGlobalClasses={false}` and inject no `<style>` element.
 * The control plane serves the UI with `Content-Security-Policy: default-src 'self'`, which
 * blocks runtime-injected styles.
 *
 * Only variables that differ from Mantine's defaults are emitted: the defaults already ship in
 * `@mantine/core/styles.css`.
 */
import type { Plugin } from "vite";
import {
  DEFAULT_THEME,
  convertCssVariables,
  defaultCssVariablesResolver,
  mergeMantineTheme,
  type MantineThemeOverride,
} from "@mantine/core";

const VIRTUAL_ID = "virtual:mantine-theme.css";
const RESOLVED_ID = "\0mantine-theme.css";

type Vars = Record<string, string>;

function withoutDefaults(input: Vars, defaults: Vars): Vars {
  const out: Vars = {};
  for (const [k, v] of Object.entries(input)) {
    if (defaults[k] !== v) out[k] = v;
  }
  return out;
}

/** The `hiddenFrom`/`visibleFrom` classes MantineProvider would otherwise inject. */
function breakpointClasses(breakpoints: Record<string, string>): string {
  return Object.entries(breakpoints)
    .map(([name, value]) => {
      const px = value.includes("px") ? parseFloat(value) : parseFloat(value) * 16;
      return (
        `@media (max-width: ${(px - 0.1) / 16}em) {.mantine-visible-from-${name} {display: none !important;}}\n` +
        `@media (min-width: ${px / 16}em) {.mantine-hidden-from-${name} {display: none !important;}}`
      );
    })
    .join("\n");
}

export function mantineThemeCss(theme: MantineThemeOverride): string {
  const merged = mergeMantineTheme(DEFAULT_THEME, theme);
  const ours = defaultCssVariablesResolver(merged);
  const defaults = defaultCssVariablesResolver(DEFAULT_THEME);
  const css = convertCssVariables(
    {
      variables: withoutDefaults(ours.variables as Vars, defaults.variables as Vars),
      light: withoutDefaults(ours.light as Vars, defaults.light as Vars),
      dark: withoutDefaults(ours.dark as Vars, defaults.dark as Vars),
    },
    ":root",
  );
  return `/* generated at build time from src/theme.ts */\n${css}\n${breakpointClasses(merged.breakpoints)}\n`;
}

export function mantineThemeCssPlugin(loadTheme: () => Promise<MantineThemeOverride>): Plugin {
  return {
    name: "keygate:mantine-theme-css",
    resolveId(id) {
      return id === VIRTUAL_ID ? RESOLVED_ID : undefined;
    },
    async load(id) {
      if (id !== RESOLVED_ID) return undefined;
      return mantineThemeCss(await loadTheme());
    },
  };
}
