/** The range control of the usage pages: presets, or a custom start and end in local time. */
import { useId, useState } from "react";
import { Button, Group, Popover, SegmentedControl, Stack, Text, TextInput } from "@mantine/core";
import { IconCalendar } from "@tabler/icons-react";
import { PRESETS, PRESET_LABEL, customRangeProblem, fromLocalInput, resolveRange, toIsoMinute, toLocalInput, type RangeSearch } from "./range";

export function RangePicker({ value, onChange }: { value: RangeSearch; onChange: (r: RangeSearch) => void }) {
  const custom = value.range === "custom";
  const [open, setOpen] = useState(false);
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [tried, setTried] = useState(false);
  const titleId = useId();

  const openEditor = () => {
    const r = resolveRange(value, new Date());
    setFrom(toLocalInput(r.start));
    setTo(toLocalInput(r.end));
    setTried(false);
    setOpen(true);
  };
  const problem = customRangeProblem(fromLocalInput(from), fromLocalInput(to));
  const apply = () => {
    setTried(true);
    if (problem) return;
    onChange({ range: "custom", from: toIsoMinute(fromLocalInput(from)!), to: toIsoMinute(fromLocalInput(to)!) });
    setOpen(false);
  };

  return (
    <Group gap={6} wrap="nowrap">
      <SegmentedControl
        size="xs"
        aria-label="Time range"
        value={custom ? "" : (value.range ?? "24h")}
        onChange={(v) => onChange({ range: v as RangeSearch["range"] })}
        data={PRESETS.map((p) => ({ value: p, label: p, title: PRESET_LABEL[p] }))}
      />
      <Popover opened={open} onChange={setOpen} position="bottom-end" trapFocus returnFocus withArrow shadow="md" width={280}>
        <Popover.Target>
          <Button
            size="xs"
            variant={custom ? "light" : "default"}
            leftSection={<IconCalendar size={14} />}
            onClick={() => (open ? setOpen(false) : openEditor())}
            aria-haspopup="dialog"
            aria-expanded={open}
          >
            {custom ? resolveRange(value, new Date()).label : "Custom"}
          </Button>
        </Popover.Target>
        <Popover.Dropdown aria-labelledby={titleId}>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              apply();
            }}
          >
            <Stack gap="xs">
              <Text size="sm" fw={600} id={titleId}>
                Custom time range
              </Text>
              <TextInput type="datetime-local" size="xs" label="From" value={from} onChange={(e) => setFrom(e.currentTarget.value)} required />
              <TextInput type="datetime-local" size="xs" label="To" value={to} onChange={(e) => setTo(e.currentTarget.value)} required />
              <Text size="xs" c="dimmed">
                Your local time. Minutes are kept 48 hours, hours 90 days, days 400 days: older ranges show coarser steps.
              </Text>
              {tried && problem && (
                <Text size="xs" c="red" role="alert">
                  {problem}
                </Text>
              )}
              <Group justify="flex-end" gap="xs">
                <Button size="xs" variant="default" onClick={() => setOpen(false)}>
                  Cancel
                </Button>
                <Button size="xs" type="submit">
                  Apply
                </Button>
              </Group>
            </Stack>
          </form>
        </Popover.Dropdown>
      </Popover>
    </Group>
  );
}
