import { kubernetesRecipe } from "../kubernetes/index.ts";

/**
 * The previous Kubernetes minor: the same recipe as `../kubernetes` at another upstream version, with
 * its own wrapper module (go.mod + go.sum) beside this file. A build takes it with
 * `--asset kubernetes@1.36.3`: images to upgrade from, so an upgrade moves between two real
 * Kubernetes versions.
 */
export default kubernetesRecipe("1.36.3", "../kubernetes/pause.sh");
