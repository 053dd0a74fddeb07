import type { AssetDef } from "../core/image/assets.ts";
import busybox from "./busybox/index.ts";
import cniFlannel from "./cni-flannel/index.ts";
import cniPlugins from "./cni-plugins/index.ts";
import containerd from "./containerd/index.ts";
import coredns from "./coredns/index.ts";
import crictl from "./crictl/index.ts";
import * as debian from "./debian.ts";
import e2e from "./e2e/index.ts";
import etcd from "./etcd/index.ts";
import flannel from "./flannel/index.ts";
import helm from "./helm/index.ts";
import kubeRouter from "./kube-router/index.ts";
import kubernetes from "./kubernetes/index.ts";
import kubernetes136 from "./kubernetes-1.36/index.ts";
import localPath from "./local-path-provisioner/index.ts";
import metricsServer from "./metrics-server/index.ts";
import registry from "./registry/index.ts";
import runc from "./runc/index.ts";
import serf from "./serf/index.ts";

/** Go components, each a folder with its recipe and wrapper module (go.mod + go.sum). */
const goModules = {
  kubernetes,
  etcd,
  containerd,
  runc,
  "cni-plugins": cniPlugins,
  crictl,
  serf,
  registry,
  flannel,
  "cni-flannel": cniFlannel,
  coredns,
  "metrics-server": metricsServer,
  "local-path-provisioner": localPath,
  helm,
  "kube-router": kubeRouter,
  e2e,
  // Another version of an asset comes after its default one; a build picks it with --asset name@version.
  "kubernetes-1.36": kubernetes136,
};

/** Every asset recipe the build knows, with the folder its go.mod and scripts are relative to. */
export const recipes: readonly { def: AssetDef; dir: string }[] = [
  ...Object.entries(goModules).map(([dir, def]) => ({ def, dir: `${import.meta.dir}/${dir}` })),
  // Built from a Debian source package.
  { def: busybox, dir: `${import.meta.dir}/busybox` },
  ...Object.values(debian).map((def) => ({ def, dir: import.meta.dir })),
];

export const recipeNames: readonly string[] = [...new Set(recipes.map((r) => r.def.name))];

export { targets } from "./targets.ts";
