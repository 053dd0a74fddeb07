import { isIP } from "node:net";
import { PlanetError } from "./errors.ts";

export interface Cidr {
  base: number;
  prefix: number;
  text: string;
}

function ipToInt(ip: string): number {
  return ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** Parses an IPv4 CIDR like `10.100.0.0/16`; `flag` names the flag in the error. */
export function parseCidr(text: string, flag: string): Cidr {
  const [ip, bits] = text.split("/");
  const prefix = Number(bits);
  if (!ip || isIP(ip) !== 4 || bits === undefined || !/^\d+$/.test(bits) || prefix < 1 || prefix > 30)
    throw new PlanetError("BAD_CIDR", `${flag} ${text}: expected an IPv4 CIDR such as 10.100.0.0/16`);
  const size = 2 ** (32 - prefix);
  const base = ipToInt(ip) - (ipToInt(ip) % size);
  return { base, prefix, text: `${intToIp(base)}/${prefix}` };
}

/** The n-th address of a subnet (0 is the network address). */
export function nthIp(cidr: Cidr, n: number): string {
  return intToIp(cidr.base + n);
}

/** The first usable address: the `kubernetes` service IP of a service subnet. */
export function firstIp(cidr: Cidr): string {
  return intToIp(cidr.base + 1);
}

export function contains(cidr: Cidr, ip: string): boolean {
  const size = 2 ** (32 - cidr.prefix);
  const n = ipToInt(ip);
  return n >= cidr.base && n < cidr.base + size;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, intToIp(b.base)) || contains(b, intToIp(a.base));
}

export function requireIp(ip: string, flag: string): string {
  if (isIP(ip) === 0) throw new PlanetError("BAD_IP", `${flag} ${ip}: not an IP address`);
  return ip;
}
