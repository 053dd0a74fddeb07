import type { PluginDef } from "../core/plugin.ts";
import agent from "./agent/index.ts";
import apilb from "./apilb/index.ts";
import conformance from "./conformance/index.ts";
import dns from "./dns/index.ts";
import etcd from "./etcd/index.ts";
import flannel from "./flannel/index.ts";
import helm from "./helm/index.ts";
import kubeMaster from "./kube-master/index.ts";
import kubeNode from "./kube-node/index.ts";
import metrics from "./metrics/index.ts";
import netpol from "./netpol/index.ts";
import registry from "./registry/index.ts";
import secrets from "./secrets/index.ts";
import serf from "./serf/index.ts";
import storage from "./storage/index.ts";

/** The hand-kept registry of in-tree plugins. A new plugin is one folder and one line here. */
export const plugins: readonly PluginDef[] = [
  secrets,
  etcd,
  kubeMaster,
  kubeNode,
  flannel,
  dns,
  serf,
  registry,
  agent,
  apilb,
  metrics,
  storage,
  netpol,
  helm,
  conformance,
];

/** Folder holding the plugin folders (each named like its plugin). */
export const pluginsDir: string = import.meta.dir;
