import { useEffect, useState } from "react";
import { TextInput, type TextInputProps } from "@mantine/core";
import { useDebouncedCallback } from "@mantine/hooks";
import { IconSearch } from "@tabler/icons-react";

export type SearchBoxProps = Omit<TextInputProps, "value" | "defaultValue" | "onChange"> & {
  /** The text in the URL; the box follows it when it changes elsewhere (links, "Clear"). */
  value: string | undefined;
  /** Called after a pause in typing with the trimmed text, undefined when empty. */
  onSearch: (text: string | undefined) => void;
  /** The pause, in milliseconds. */
  delay?: number;
};

/**
 * A list's text filter kept in the URL: shows what is typed at once and pushes it to the URL
 * after a pause, or at once on Enter. Small, with a search icon, unless the input props say
 * otherwise.
 */
export function SearchBox({ value, onSearch, delay = 250, ...input }: SearchBoxProps) {
  const [text, setText] = useState(value ?? "");
  useEffect(() => setText(value ?? ""), [value]);
  const push = useDebouncedCallback((v: string) => onSearch(v.trim() || undefined), delay);
  return (
    <TextInput
      size="xs"
      leftSection={<IconSearch size={14} />}
      {...input}
      value={text}
      onChange={(e) => {
        setText(e.currentTarget.value);
        push(e.currentTarget.value);
      }}
      onKeyDown={(e) => {
        if (e.key === "Enter") push.flush();
        input.onKeyDown?.(e);
      }}
    />
  );
}
