/**
 * The token page's dialogs (create/edit, rotate, revoke, the plaintext shown once) and its
 * details drawer. A chunk of its own, loaded lazily by `TokensPage`: the list paints without
 * waiting for the forms' and snippets' code. Mounted once loaded and kept mounted, so opening
 * and closing behave as if they were part of the page.
 */
import { Text } from "@mantine/core";
import type { CreateTokenResponse, RotateTokenResponse, Token } from "../../gen/keygate/v1/token_pb";
import { TokenStatus } from "../../gen/keygate/v1/common_pb";
import { absoluteTime, tsToDate } from "../../lib/format";
import { TokenFormModal } from "./TokenFormModal";
import { PlaintextModal } from "./PlaintextModal";
import { RotateModal } from "./RotateModal";
import { RevokeModal } from "./RevokeModal";
import { TokenDrawer } from "./TokenDrawer";

export type Dialog =
  | { kind: "create" }
  | { kind: "edit"; token: Token }
  | { kind: "rotate"; token: Token }
  | { kind: "revoke"; tokens: Token[] }
  | { kind: "plaintext"; title: string; token: Token | undefined; plaintext: string; note?: string }
  | null;

export default function TokenDialogs({
  dialog,
  setDialog,
  open,
  setOpen,
  creatableTeams,
  defaultTeam,
  canChange,
  onRevoked,
}: {
  dialog: Dialog;
  setDialog: (d: Dialog) => void;
  /** The token whose drawer is open (`?open=<id>`). */
  open: string | undefined;
  setOpen: (id: string | undefined) => void;
  creatableTeams: string[];
  defaultTeam: string | undefined;
  canChange: (t: Token) => boolean;
  /** Ids revoked by a (bulk) revoke: the page drops them from its selection. */
  onRevoked: (ok: string[]) => void;
}) {
  return (
    <>
      <TokenFormModal
        opened={dialog?.kind === "create" || dialog?.kind === "edit"}
        token={dialog?.kind === "edit" ? dialog.token : undefined}
        onClose={() => setDialog(null)}
        creatableTeams={creatableTeams}
        defaultTeam={defaultTeam}
        onCreated={(r: CreateTokenResponse) => setDialog({ kind: "plaintext", title: "Token created", token: r.token, plaintext: r.plaintext })}
      />
      <RotateModal
        token={dialog?.kind === "rotate" ? dialog.token : undefined}
        onClose={() => setDialog(null)}
        onRotated={(r: RotateTokenResponse) => {
          const until = tsToDate(r.previous?.expiresAt);
          const revokedNow = r.previous?.status === TokenStatus.REVOKED;
          setDialog({
            kind: "plaintext",
            title: "Token rotated",
            token: r.token,
            plaintext: r.plaintext,
            note: revokedNow ? "The old token was revoked." : until ? `The old token keeps working until ${absoluteTime(until)}.` : undefined,
          });
        }}
      />
      <RevokeModal tokens={dialog?.kind === "revoke" ? dialog.tokens : []} onClose={() => setDialog(null)} onDone={(r) => onRevoked(r.ok)} />
      <PlaintextModal
        opened={dialog?.kind === "plaintext"}
        onClose={() => setDialog(null)}
        title={dialog?.kind === "plaintext" ? dialog.title : ""}
        token={dialog?.kind === "plaintext" ? dialog.token : undefined}
        plaintext={dialog?.kind === "plaintext" ? dialog.plaintext : ""}
        note={dialog?.kind === "plaintext" && dialog.note ? <Text size="sm">{dialog.note}</Text> : undefined}
      />
      <TokenDrawer
        id={open}
        onClose={() => setOpen(undefined)}
        onOpen={setOpen}
        canChange={canChange}
        onEdit={(t) => setDialog({ kind: "edit", token: t })}
        onRotate={(t) => setDialog({ kind: "rotate", token: t })}
        onRevoke={(t) => setDialog({ kind: "revoke", tokens: [t] })}
      />
    </>
  );
}
