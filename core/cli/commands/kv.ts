import { defineCommand } from "citty";
import { etcdClient } from "../../agent/agent.ts";
import { PlanetError } from "../../errors.ts";
import { debugArg } from "../_args.ts";

/**
 * `planet kv get|put`: one etcd key over gRPC with a client certificate, for scripts in the bubble
 * on hosts that carry no etcdctl. Unlike etcd's JSON gateway, the request goes as the
 * certificate's own user, so etcd's role-based access applies to it.
 */
const conn = {
  endpoints: { type: "string", description: "comma list of https://ip:2379", required: true },
  cacert: { type: "string", description: "CA of etcd's certificates", default: "/var/state/etcd-ca.cert" },
  cert: { type: "string", description: "client certificate (its CN is the etcd user)", required: true },
  key: { type: "string", description: "client key", required: true },
  timeout: { type: "string", description: "seconds", default: "5" },
  "server-name": { type: "string", description: "a DNS name in etcd's server certificate (checked for every endpoint)" },
} as const;

function client(args: { endpoints: string; cacert: string; cert: string; key: string; "server-name"?: string }) {
  return etcdClient({
    endpoints: args.endpoints.split(","),
    ca: args.cacert,
    cert: args.cert,
    key: args.key,
    serverName: args["server-name"],
  });
}

async function within<T>(seconds: string, p: Promise<T>): Promise<T> {
  const ms = Number(seconds) * 1000;
  if (!Number.isFinite(ms) || ms <= 0) throw new PlanetError("BAD_FLAG", `--timeout ${seconds}: expected seconds`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PlanetError("ETCD_UNREACHABLE", `etcd did not answer within ${seconds}s`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } catch (e) {
    if (e instanceof PlanetError) throw e;
    throw new PlanetError("ETCD_ERROR", (e as Error).message);
  } finally {
    clearTimeout(timer);
  }
}

export default defineCommand({
  meta: { name: "kv", description: "get or put one etcd key with a client certificate (scripts in the bubble)" },
  subCommands: {
    get: defineCommand({
      meta: { name: "get", description: "print the value; exit 1 when the key is absent" },
      args: { ...debugArg, ...conn, key_: { type: "positional", description: "key", required: true } },
      async run({ args }) {
        const c = client(args);
        try {
          const v = await within(args.timeout, c.get(args.key_).string());
          if (v === null) throw new PlanetError("NO_KEY", `${args.key_} is not in etcd`);
          process.stdout.write(`${v}\n`);
        } finally {
          c.close();
        }
      },
    }),
    put: defineCommand({
      meta: { name: "put", description: "write the value" },
      args: {
        ...debugArg,
        ...conn,
        key_: { type: "positional", description: "key", required: true },
        value: { type: "positional", description: "value", required: true },
      },
      async run({ args }) {
        const c = client(args);
        try {
          await within(args.timeout, c.put(args.key_).value(args.value).exec());
        } finally {
          c.close();
        }
      },
    }),
  },
});
