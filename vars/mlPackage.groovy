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
        modelUri: null,               // The MLflow model: runs:/RUN_ID/PATH, models:/NAME/VERSION, models:/NAME@ALIAS
        registry: null,               // Registry to push to, HOST[:PORT][/NAMESPACE] without a scheme
        repository: null,             // Image repository name (without registry or tag)
        tag: null,                    // Image tag
        baseImage: null,              // Base image of the build
        gpu: null,                    // true builds on a CUDA runtime base image (when baseImage is not given)
        platform: null,               // Target platform of the build, e.g. linux/amd64
        buildArg: [],                 // Build argument, KEY=VALUE; a List or a Map
        systemPackage: [],            // Debian/Ubuntu package to install in the image (repeatable); a List
        pipIndexUrl: null,            // Package index uv (or pip) installs the model's requirements from
        pipExtraIndexUrl: [],         // Extra package index URL for the requirements, without credentials; a List
        caBundle: null,               // CA bundle (PEM file) uv and pip trust during the build
        noCache: null,                // true rebuilds the dependencies image even when one for the same requirements…
        push: null,                   // Push the image to registry
        load: null,                   // Keep the built image in the local Docker Engine (mlsteps: true)
        smokeTest: null,              // Smoke-test the image before pushing
        smokeTimeout: null,           // How long the smoke test waits for the server to answer /ping, e.g. 2m
        register: null,               // Register the model version
        registryUsername: null,       // User name for registry, its password in MLSTEPS_PACKAGE_REGISTRY_PASSWORD
        registryCredentialsId: null,  // Username with password credential for the registry: its user name and password
        trackingUri: null,            // MLflow tracking server, e.g. http://127.0.0.1:5000 (none: nothing is tracked)
        name: null,                   // Registered model name in MLflow
        config: null,                 // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',           // The mlsteps executable: a path, or a List of words
    ]
    Cli cli = new Cli(this, 'mlPackage')
    // The forms a key's value may take (generated from the option table: python -m steps.faces);
    // keys not listed take one String or number.
    Map<String, String> forms = [gpu: Cli.BOOLEAN, buildArg: Cli.PAIRS, systemPackage: Cli.WORDS,
                                 pipExtraIndexUrl: Cli.WORDS, noCache: Cli.BOOLEAN, push: Cli.BOOLEAN,
                                 load: Cli.BOOLEAN, smokeTest: Cli.BOOLEAN, register: Cli.BOOLEAN, mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (!problem && userConfig.registryCredentialsId && userConfig.registryUsername) {
        problem = 'mlPackage: give registryCredentialsId (its credential holds the user name) or ' +
            'registryUsername, not both'
    }
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    List<String> environment = Cli.mlflowEnvironment(config)

    // Keys that are not `mlsteps package` flags (generated).
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
    // Any other credential is a Secret text one (string(), a pipeline symbol too): each
    // *CredentialsId key and the variable mlsteps reads it from (generated from the option
    // table: python -m steps.faces).
    Map<String, String> credentials = [:]
    for (Map binding : Cli.credentialBindings(config, credentials)) {
        bindings << string(credentialsId: binding.credentialsId, variable: binding.variable)
    }
    int status = cli.run('package', script, environment, bindings)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {
        error cli.failure('package', status, [:])
    }
    return outputs
}
