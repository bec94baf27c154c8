/*
 * mlDeploy: run `mlsteps deploy` and return its outputs.
 *
 * Keys are the `mlsteps deploy` options in camelCase; see mlDeploy.txt. Behaviour lives in mlsteps:
 * this step only builds the command line, runs it and reads back the outputs file mlsteps writes.
 */

import mlsteps.jenkins.Cli

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        image: null,                   // The candidate's serving image, e.g. package's image-ref output
        championImage: null,           // The image the endpoint starts with when nothing serves yet (the first deploy)
        strategy: null,                // canary: the candidate takes steps of the traffic, judged at each; linear
        steps: null,                   // The candidate's share of traffic at each step, ending with 100
        target: null,                  // Where the models serve: docker
        endpoint: null,                // The endpoint's name (default: name, the registered model)
        listen: null,                  // docker: the port on this machine's loopback where the proxy
        stateDir: null,                // docker: where the endpoint's proxy config, logs and data capture live
        sagemakerRoleArn: null,        // sagemaker: the execution role SageMaker models made from image
        sagemakerInstanceType: null,   // sagemaker: the instance type of a new endpoint's champion
        sagemakerInstanceCount: null,  // sagemaker: the instance count of a new endpoint's champion (mlsteps: 1)
        minBake: null,                 // The least time each step runs, however good the numbers look
        minRequests: null,             // The least number of requests the candidate answers in each step before it…
        maxBake: null,                 // The most time a step runs before onInconclusive decides
        lookEvery: null,               // How often the judge looks (mlsteps: 10s)
        onInconclusive: null,          // At maxBake with no decision: rollback (traffic back on the champion, exit 3)
        retry: null,                   // Roll the candidate out again although an earlier deploy with the same…
        alpha: null,                   // The judge's error budget
        errorMargin: null,             // Errors
        errorFloor: null,              // When errors are too rare to compare (none at all is the usual case)
        latencyMargin: null,           // How much slower (geometric mean) the candidate may be and still be shown safe
        latencyTolerance: null,        // How much slower
        disagreementTolerance: null,   // shadow and blue-green
        predictionTolerance: null,     // Two numeric predictions within this absolute difference agree (mlsteps: 0.0)
        version: null,                 // The candidate's version in the MLflow registry
        reportDir: null,               // Where report.md, report.json and a PNG per metric are written
        trackingUri: null,             // MLflow tracking server, e.g. http://127.0.0.1:5000 (none: nothing is tracked)
        name: null,                    // Registered model name in MLflow
        config: null,                  // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',            // The mlsteps executable: a path, or a List of words
    ]
    Cli cli = new Cli(this, 'mlDeploy')
    // The forms a key's value may take (generated from the option table: python -m steps.faces);
    // keys not listed take one String or number.
    Map<String, String> forms = [retry: Cli.BOOLEAN, mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    // Keys that are not `mlsteps deploy` flags (generated). A Map of rules goes as JSON
    // (Cli.rulesAsJson).
    List<String> notFlags = ['trackingUri', 'config', 'mlsteps']
    String script = Cli.shellLine(Cli.command(config, ['deploy']) +
        Cli.flags(Cli.rulesAsJson(config, forms), Cli.flagKeys(defaultConfig, notFlags)))
    // string() is a pipeline symbol, so the bindings are made here, not in a @NonCPS helper.
    // Each *CredentialsId key: the Secret text credential mlsteps reads from the variable named
    // (generated; a Username with password one needs usernamePassword(), as in mlPackage).
    Map<String, String> credentials = [:]
    List bindings = []
    for (Map binding : Cli.credentialBindings(config, credentials)) {
        bindings << string(credentialsId: binding.credentialsId, variable: binding.variable)
    }
    List<String> environment = Cli.mlflowEnvironment(config)
    int status = cli.run('deploy', script, environment, bindings)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {
        error cli.failure('deploy', status, [3: 'the candidate was rolled back or held'])
    }
    return outputs
}
