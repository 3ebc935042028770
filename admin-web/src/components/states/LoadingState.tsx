import { Center, Loader, Skeleton, Stack } from "@mantine/core";

/** Whole-area loading (route transitions, first load of a page). */
export function LoadingState({ label = "Loading" }: { label?: string }) {
  return (
    <Center py={64} role="status" aria-live="polite">
      <Loader size="sm" aria-label={label} />
    </Center>
  );
}

/** Placeholder rows for tables and lists. */
export function SkeletonRows({ rows = 6, height = 28 }: { rows?: number; height?: number }) {
  return (
    <Stack gap={8} p="sm" role="status" aria-label="Loading">
      {Array.from({ length: rows }, (_, i) => (
        <Skeleton key={i} height={height} radius="sm" />
      ))}
    </Stack>
  );
}
