/** Footer of a cursor-paginated list: "51–100 of 1,234", previous/next, page size. */
import { ActionIcon, Group, NativeSelect, Text } from "@mantine/core";
import { IconChevronLeft, IconChevronRight } from "@tabler/icons-react";
import { rangeText } from "../../lib/pager";

export const PAGE_SIZES = [25, 50, 100, 200] as const;

export interface PagerProps {
  page: number;
  pageSize: number;
  count: number;
  total: number | undefined;
  hasNext: boolean;
  onPrev: () => void;
  onNext: () => void;
  onPageSize: (n: number) => void;
  noun?: string;
}

export function Pager(p: PagerProps) {
  return (
    <>
      <Text size="sm" c="dimmed" aria-live="polite">
        {rangeText(p.page, p.pageSize, p.count, p.total, p.noun)}
      </Text>
      <Group gap={6} wrap="nowrap">
        <NativeSelect
          size="xs"
          aria-label="Rows per page"
          value={String(p.pageSize)}
          data={PAGE_SIZES.map((n) => ({ value: String(n), label: `${n} / page` }))}
          onChange={(e) => p.onPageSize(Number(e.currentTarget.value))}
        />
        <ActionIcon variant="default" size="md" onClick={p.onPrev} disabled={p.page <= 1} aria-label="Previous page">
          <IconChevronLeft size={16} />
        </ActionIcon>
        <ActionIcon variant="default" size="md" onClick={p.onNext} disabled={!p.hasNext} aria-label="Next page">
          <IconChevronRight size={16} />
        </ActionIcon>
      </Group>
    </>
  );
}
