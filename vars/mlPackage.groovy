/*
 * mlPackage: run `mlsteps package` (an MLflow model into a smoke-tested serving image, pushed
 * and registered) and return its outputs.
 *
 *   def trained = mlTrain(image: 'trainer:1.2', command: ['python', 'train.py'])
 *   def packaged = mlPackage(modelUri: trained['model-uri'], name: 'churn',
 *                            registry: 'registry.internal:5000/ml', registryCredentialsId: 'registry-push')
 *   echo "model version ${packaged['model-version']} is ${packaged['image-ref']}"
 *
 * Keys are the `mlsteps package` options in camelCase (option `base-image` is key `baseImage`);
 * see mlPackage.txt. The registry password is never a key: it comes from the Jenkins credential
 * named by registryCredentialsId, or from MLSTEPS_PACKAGE_REGISTRY_PASSWORD in the environment.
 * Behaviour lives in mlsteps: this step only builds the command line, runs it and reads back the
 * outputs file mlsteps writes.
 */

import mlsteps.jenkins.Cli

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        modelUri: null,               // the MLflow model, e.g. models:/NAME@ALIAS or mlTrain's model-uri (see the .txt)
        registry: null,               // registry to push to, 'HOST[:PORT][/NAMESPACE]'; unset: build and test only
        repository: null,             // image repository name (mlsteps: the registered model name, lower-cased)
        tag: null,                    // image tag (mlsteps: vVERSION for a model version, else model-UUID12)
        baseImage: null,              // base image (mlsteps: python:X.Y-slim for the model's Python, or CUDA with gpu)
        gpu: null,                    // true: a CUDA runtime base image when baseImage is not given (mlsteps: false)
        platform: null,               // target platform of the build, e.g. 'linux/amd64'
        buildArg: [],                 // build arguments: a List of 'KEY=VALUE' or a Map (kept in the image: no secrets)
        pipIndexUrl: null,            // package index for the requirements, without credentials (kept in the image)
        pipExtraIndexUrl: [],         // extra package indexes: a List of URLs, without credentials
        caBundle: null,               // CA bundle (PEM file) pip trusts during the build, for a proxy that re-signs TLS
        noCache: null,                // true: rebuild the dependencies image even when one exists (mlsteps: false)
        push: null,                   // push the image to the registry (mlsteps: true when registry is set)
        load: null,                   // false: remove the image from the agent's Docker after the push (mlsteps: true)
        smokeTest: null,              // check the image's answer against the model's before pushing (mlsteps: true)
        smokeTimeout: null,           // how long the smoke test waits for /ping, e.g. '2m' (mlsteps: 120s)
        register: null,               // register the model version, tag it with the image and lineage (mlsteps: true)
        registryUsername: null,       // registry user; password in MLSTEPS_PACKAGE_REGISTRY_PASSWORD (see the .txt)
        registryCredentialsId: null,  // Username with password credential for the registry: its user name and password
        trackingUri: null,            // MLflow tracking URI (else MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI)
        name: null,                   // registered model name in MLflow (to register a runs:/ or models:/ID model)
        config: null,                 // path of an mlsteps.yaml (mlsteps: ./mlsteps.yaml when present)
        mlsteps: 'mlsteps',           // the mlsteps executable: a path, or a List of words ['python3', '-m', 'steps']
    ]
    Cli cli = new Cli(this, 'mlPackage')
    // The forms a key's value may take; keys not listed take one String or number.
    Map<String, String> forms = [buildArg: Cli.PAIRS, pipExtraIndexUrl: Cli.WORDS, mlsteps: Cli.WORDS,
                                 gpu: Cli.BOOLEAN, noCache: Cli.BOOLEAN, push: Cli.BOOLEAN, load: Cli.BOOLEAN,
                                 smokeTest: Cli.BOOLEAN, register: Cli.BOOLEAN]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (!problem && userConfig.registryCredentialsId && userConfig.registryUsername) {
        problem = 'mlPackage: give registryCredentialsId (its credential holds the user name) or ' +
            'registryUsername, not both'
    }
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    // As in mlTrain, the tracking URI travels as the environment mlsteps reads (withEnv passes it
    // without a shell, so it needs no quoting), not on the command line the console shows.
    List<String> environment = []
    if (config.trackingUri) {
        environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
    }

    // Keys that are not `mlsteps package` flags.
    List<String> notFlags = ['registryCredentialsId', 'trackingUri', 'config', 'mlsteps']
    String script = Cli.shellLine(Cli.command(config, ['package']) +
        Cli.flags(config, Cli.flagKeys(defaultConfig, notFlags)))
    // usernamePassword() is a pipeline symbol, so the binding is made here, not in a @NonCPS
    // helper. The password reaches mlsteps only as a variable withCredentials binds (and
    // Jenkins masks); it is never part of the command line or of a Groovy string.
    List bindings = []
    if (config.registryCredentialsId) {
        bindings << usernamePassword(
            credentialsId: config.registryCredentialsId.toString(),
            usernameVariable: 'MLSTEPS_PACKAGE_REGISTRY_USERNAME',
            passwordVariable: 'MLSTEPS_PACKAGE_REGISTRY_PASSWORD'
        )
    }
    int status = cli.run('package', script, environment, bindings)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {
        error cli.failure('package', status, [:])
    }
    return outputs
}
