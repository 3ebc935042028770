/** Mantine buttons and anchors as typed router links (path, params and search checked). */
import { forwardRef } from "react";
import { Anchor, Button, type AnchorProps, type ButtonProps } from "@mantine/core";
import { createLink } from "@tanstack/react-router";

const ButtonAnchor = forwardRef<HTMLAnchorElement, ButtonProps & React.AnchorHTMLAttributes<HTMLAnchorElement>>((props, ref) => (
  <Button component="a" ref={ref} {...props} />
));
const PlainAnchor = forwardRef<HTMLAnchorElement, AnchorProps & React.AnchorHTMLAttributes<HTMLAnchorElement>>((props, ref) => (
  <Anchor ref={ref} {...props} />
));

export const ButtonLink = createLink(ButtonAnchor);
export const AnchorLink = createLink(PlainAnchor);
