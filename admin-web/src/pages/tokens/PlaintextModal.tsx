/**
 * The token's plaintext, shown exactly once (after CreateToken or RotateToken), with copy and
 * ready-to-paste cURL and n8n snippets. Closing needs an explicit click: the value cannot be
 * read again.
 */
import { Alert, Button, Code, Group, Modal, Stack, Tabs, Text } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { IconAlertTriangle } from "@tabler/icons-react";
import type { Token } from "../../gen/keygate/v1/token_pb";
import { allRoutesQuery } from "../../api/lists";
import { TOKEN_HEADER, gatewayBaseUrl } from "../../config/gateway";
import { curlSnippet, exampleRoute, joinUrl, n8nSnippet } from "../../lib/snippets";
import { CopyTextButton } from "../../components/misc/Copy";

export function PlaintextModal({
  opened,
  onClose,
  title,
  token,
  plaintext,
  note,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  token: Token | undefined;
  plaintext: string;
  note?: React.ReactNode;
}) {
  const routes = useQuery(allRoutesQuery);
  const gw = gatewayBaseUrl();
  const route = token ? exampleRoute(token.scopes, routes.data ?? []) : undefined;
  const url = joinUrl(gw.url, route ? `${route.pathPrefix.replace(/\/+$/, "")}/` : "/your-route/");
  const curl = curlSnippet(url, TOKEN_HEADER, plaintext);
  const n8n = n8nSnippet(url, TOKEN_HEADER, plaintext, token?.name ?? "token");

  return (
    <Modal opened={opened} onClose={onClose} title={title} size="lg" closeOnClickOutside={false} closeOnEscape={false} withCloseButton={false}>
      <Stack gap="md">
        <Alert color="yellow" variant="light" icon={<IconAlertTriangle size={18} />} p="sm">
          Copy the token now. Keygate keeps only its hash: it cannot be shown again.
        </Alert>
        <div>
          <Text size="sm" fw={500} mb={4}>
            Token{token ? ` "${token.name}"` : ""}
          </Text>
          <Group gap="xs" wrap="nowrap" align="center">
            <Code block className="kg-snippet" style={{ flex: 1 }} data-testid="token-plaintext">
              {plaintext}
            </Code>
            <CopyTextButton value={plaintext} label="Copy token" />
          </Group>
        </div>
        {note}
        <Tabs defaultValue="curl" keepMounted={false}>
          <Tabs.List>
            <Tabs.Tab value="curl">cURL</Tabs.Tab>
            <Tabs.Tab value="n8n">n8n</Tabs.Tab>
          </Tabs.List>
          <Tabs.Panel value="curl" pt="sm">
            <pre className="kg-snippet">{curl}</pre>
            <Group justify="space-between" mt={6}>
              <Text size="xs" c="dimmed">
                {route ? `Calls route "${route.name}".` : "Replace /your-route/ with a route path the token may call."}
                {gw.assumed && " Gateway address assumed (this host, port 8080)."}
              </Text>
              <CopyTextButton value={curl} label="Copy cURL" />
            </Group>
          </Tabs.Panel>
          <Tabs.Panel value="n8n" pt="sm">
            <pre className="kg-snippet">{n8n}</pre>
            <Group justify="space-between" mt={6}>
              <Text size="xs" c="dimmed">
                An HTTP Request node sending the token as {TOKEN_HEADER}: paste it onto the n8n canvas.
              </Text>
              <CopyTextButton value={n8n} label="Copy n8n node" />
            </Group>
          </Tabs.Panel>
        </Tabs>
        <Group justify="flex-end">
          <Button onClick={onClose} data-autofocus>
            I have copied it
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
