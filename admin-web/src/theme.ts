/**
 * The Mantine theme. Its CSS variables are turned into a static stylesheet at build time
 * (build/mantine-css.ts), so keep it a plain object: no functions that read the DOM.
 */
import { createTheme, type MantineThemeOverride } from "@mantine/core";

export const theme: MantineThemeOverride = createTheme({
  primaryColor: "indigo",
  // Shade 7 keeps white text on filled buttons above 4.5:1 (WCAG AA).
  primaryShade: { light: 7, dark: 8 },
  defaultRadius: "sm",
  fontFamily:
    'Inter, ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  fontFamilyMonospace: 'ui-monospace, "JetBrains Mono", "SFMono-Regular", Menlo, Consolas, monospace',
  headings: { fontWeight: "600", sizes: { h1: { fontSize: "1.5rem" }, h2: { fontSize: "1.25rem" }, h3: { fontSize: "1.05rem" } } },
  cursorType: "pointer",
  components: {
    Table: { defaultProps: { verticalSpacing: 6, horizontalSpacing: 10, fz: "sm" } },
    Badge: { defaultProps: { radius: "sm", variant: "light", tt: "none" } },
    Tooltip: { defaultProps: { openDelay: 300, withArrow: true } },
    // lockScroll off: react-remove-scroll injects a <style> element (blocked by the CSP). The
    // page never scrolls the body anyway: the shell's main area is the scroll container.
    Modal: { defaultProps: { centered: true, lockScroll: false, closeButtonProps: { "aria-label": "Close dialog" } } },
    // Below modals (200): dialogs opened from a drawer (edit, rotate) must be on top of it.
    Drawer: { defaultProps: { lockScroll: false, zIndex: 150, closeButtonProps: { "aria-label": "Close" } } },
  },
});
