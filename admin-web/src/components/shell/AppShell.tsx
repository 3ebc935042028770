/** The signed-in layout: collapsible sidebar (remembered), top bar, page outlet. */
import { Suspense, useEffect } from "react";
import { Link, Outlet, useRouter } from "@tanstack/react-router";
import { ActionIcon, Kbd, Tooltip } from "@mantine/core";
import { useHotkeys, useLocalStorage } from "@mantine/hooks";
import { IconLayoutSidebarLeftCollapse, IconLayoutSidebarLeftExpand, IconSearch } from "@tabler/icons-react";
import { spotlight } from "@mantine/spotlight";
import { NAV } from "../../nav";
import { preloadPagesWhenIdle } from "../../lib/preload";
import { useMe } from "../../auth/session";
import { LoadingState } from "../states/LoadingState";
import { ThemeMenu } from "./ThemeMenu";
import { UserMenu } from "./UserMenu";
import { SearchSpotlight } from "./SearchSpotlight";
import classes from "./Shell.module.css";

export function AppShell() {
  const me = useMe();
  const [collapsed, setCollapsed] = useLocalStorage({
    key: "kg-sidebar-collapsed",
    defaultValue: false,
    getInitialValueInEffect: false,
  });
  const toggle = () => setCollapsed((c) => !c);
  useHotkeys([["mod+B", toggle]]);
  // The sidebar's pages' code, fetched while idle: a first visit waits only for its data.
  const router = useRouter();
  const visible = NAV.flatMap((g) => g.items.filter((item) => item.visible?.(me) ?? true).map((item) => item.to));
  const visibleKey = visible.join(" ");
  useEffect(() => preloadPagesWhenIdle(router, visibleKey.split(" ")), [router, visibleKey]);

  return (
    <div className={classes.shell} data-collapsed={collapsed}>
      <nav className={classes.nav} aria-label="Main">
        <Link to="/" className={classes.brand} aria-label="Keygate home">
          <img src="/favicon.svg" alt="" width={22} height={22} />
          {!collapsed && <span>Keygate</span>}
        </Link>
        <div className={classes.navBody}>
          {NAV.map((group) => (
            <div key={group.label}>
              <div className={classes.group} aria-hidden={collapsed}>
                {group.label}
              </div>
              {group.items.filter((item) => item.visible?.(me) ?? true).map((item) => (
                <Tooltip key={item.to} label={item.label} position="right" disabled={!collapsed}>
                  <Link
                    to={item.to}
                    className={classes.link}
                    activeOptions={{ exact: item.to === "/", includeSearch: false }}
                    aria-label={collapsed ? item.label : undefined}
                  >
                    <item.icon className={classes.linkIcon} stroke={1.6} aria-hidden />
                    <span className={classes.linkLabel}>{item.label}</span>
                  </Link>
                </Tooltip>
              ))}
            </div>
          ))}
        </div>
        <div className={classes.navFoot}>
          <Tooltip label={collapsed ? "Expand sidebar (Ctrl+B)" : "Collapse sidebar (Ctrl+B)"} position="right">
            <ActionIcon
              variant="subtle"
              color="gray"
              onClick={toggle}
              aria-label={collapsed ? "Expand sidebar" : "Collapse sidebar"}
              aria-expanded={!collapsed}
            >
              {collapsed ? <IconLayoutSidebarLeftExpand size={18} /> : <IconLayoutSidebarLeftCollapse size={18} />}
            </ActionIcon>
          </Tooltip>
        </div>
      </nav>

      <header className={classes.top}>
        <button type="button" className={classes.searchButton} onClick={() => spotlight.open()} aria-keyshortcuts="Control+K">
          <IconSearch size={15} aria-hidden />
          <span className={classes.searchText}>Search tokens, routes, teams…</span>
          <Kbd size="xs">Ctrl K</Kbd>
        </button>
        <div style={{ flex: 1 }} />
        <ThemeMenu />
        <UserMenu />
      </header>

      <main className={classes.main} id="main">
        <div className={classes.content}>
          <Suspense fallback={<LoadingState />}>
            <Outlet />
          </Suspense>
        </div>
      </main>
      <SearchSpotlight />
    </div>
  );
}
