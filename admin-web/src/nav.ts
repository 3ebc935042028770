/** The sidebar's pages, shared with Ctrl-K's "go to" actions. */
import {
  IconActivity,
  IconChartBar,
  IconHeartRateMonitor,
  IconHome,
  IconKey,
  IconListDetails,
  IconRoute,
  IconRobot,
  IconUsers,
  IconUsersGroup,
  type Icon,
} from "@tabler/icons-react";

import { canListServiceAccounts, canListUsers, isSystemAdmin, type Me } from "./auth/permissions";

export interface NavItem {
  to: "/" | "/tokens" | "/routes" | "/teams" | "/users" | "/service-accounts" | "/usage" | "/audit" | "/system";
  label: string;
  icon: Icon;
  keywords?: string[];
  /** Hide the entry from callers the server would refuse anyway. */
  visible?: (me: Me) => boolean;
}

export interface NavGroup {
  label: string;
  items: NavItem[];
}

export const NAV: NavGroup[] = [
  { label: "Overview", items: [{ to: "/", label: "Dashboard", icon: IconHome, keywords: ["home"] }] },
  {
    label: "Access",
    items: [
      { to: "/tokens", label: "Tokens", icon: IconKey, keywords: ["api keys"] },
      { to: "/routes", label: "Routes", icon: IconRoute, keywords: ["backends", "services"] },
    ],
  },
  {
    label: "Organization",
    items: [
      { to: "/teams", label: "Teams", icon: IconUsersGroup },
      { to: "/users", label: "Users & invitations", icon: IconUsers, keywords: ["invite", "people"], visible: canListUsers },
      { to: "/service-accounts", label: "Service accounts", icon: IconRobot, keywords: ["management keys"], visible: canListServiceAccounts },
    ],
  },
  {
    label: "Observe",
    items: [
      { to: "/usage", label: "Usage", icon: IconChartBar, keywords: ["analytics", "calls"] },
      { to: "/audit", label: "Audit log", icon: IconListDetails, keywords: ["history"] },
      { to: "/system", label: "System health", icon: IconHeartRateMonitor, keywords: ["status", "sync", "gateways"], visible: isSystemAdmin },
    ],
  },
];

export const ACTIVITY_ICON = IconActivity;
